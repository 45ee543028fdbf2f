"""Timing loops that tell the truth on CPU and GPU.

Every timed call is bracketed by a device synchronization, so GPU work queued by the call
is inside the measurement; warm-up calls (allocator, cuDNN / oneDNN autotuning, CUDA
graph capture, ONNX Runtime's first-run setup) are never timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TimingPolicy:
    warmup: int = 3
    min_iters: int = 5
    min_seconds: float = 1.0
    max_iters: int = 1000


def synchronize(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], policy: TimingPolicy, device: torch.device | None = None) -> list[float]:
    """Seconds of each timed call: at least ``min_iters`` and ``min_seconds`` of calls."""
    for _ in range(policy.warmup):
        fn()
    synchronize(device)
    samples: list[float] = []
    total = 0.0
    while len(samples) < policy.max_iters and (len(samples) < policy.min_iters or total < policy.min_seconds):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        elapsed = time.perf_counter() - start
        samples.append(elapsed)
        total += elapsed
    return samples


def reset_peak_host_memory() -> None:
    """Linux lets a process reset its peak resident size (VmHWM) by writing 5 to clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_host_memory_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@torch.inference_mode()
def reference_workload(device: torch.device, seconds: float = 0.5, size: int | None = None) -> tuple[float, float]:
    """A dense matrix product measured now, on this device: ``(ms per call, GFLOP/s)``.

    Regression gates divide latencies by it (so a slower shared runner does not read as a
    regression) and the compute-efficiency figure divides the network's GFLOP/s by it.
    fp32 1024^3 on CPU (``size`` overrides), fp16 8192^3 on GPU.
    """
    n, dtype = (8192, torch.float16) if device.type == "cuda" else (1024, torch.float32)
    n = size or n
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    samples = measure(lambda: torch.mm(a, b), TimingPolicy(warmup=2, min_iters=5, min_seconds=seconds), device)
    samples.sort()
    ms = samples[len(samples) // 2] * 1e3
    return ms, 2 * n**3 / (ms / 1e3) / 1e9
