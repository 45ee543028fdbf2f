"""Measuring targets: model latency at a fixed input, or the paper's whole per-image
multi-scale path; optional parity against the PyTorch training graph."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acfd_deploy.bench.stats import median_of_repeats, summarize
from acfd_deploy.bench.targets import Target
from acfd_deploy.bench.timing import TimingPolicy, measure, peak_host_memory_mb, reset_peak_host_memory
from acfd_deploy.data import generate_sample, sample_rng
from acfd_deploy.data.synth import synthetic_batch
from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.detector import MS_TEST_SCALES, Detector, DetectorConfig
from acfd_deploy.pipeline.io import decode_image
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device
from acfd_deploy.verify.accuracy import DEFAULT_VAL_IMAGES, SYNTHETIC_VAL_SEED, synthetic_validation_set
from acfd_deploy.verify.inputs import parity_inputs
from acfd_deploy.verify.verifier import Verifier


@dataclass(frozen=True)
class BenchPlan:
    batches: tuple[int, ...] = (1,)
    imgsz: tuple[int, int] = (640, 640)
    ms_test: bool = False
    source: str = "1920x1080"
    repeats: int = 3
    policy: TimingPolicy = TimingPolicy()
    device: str = "cpu"

    @property
    def input_label(self) -> str:
        return f"ms-test {self.source}" if self.ms_test else f"{self.imgsz[0]}x{self.imgsz[1]}"


def source_jpeg(source: str) -> bytes:
    """The encoded image the multi-scale test decodes each time: a file, or ``WxH`` of a
    synthetic scene (1920x1080 by default: the challenge's image size)."""
    from PIL import Image

    path = Path(source)
    if path.is_file():
        return path.read_bytes()
    try:
        w, h = (int(v) for v in source.lower().split("x"))
    except ValueError:
        raise AcfdError(f"--source must be an image file or WIDTHxHEIGHT, got {source!r}") from None
    if w < 32 or h < 32:
        raise AcfdError(f"--source size must be at least 32x32, got {source}")
    pixels, _ = generate_sample(sample_rng(7, 0), h, w)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _sync_device(runner: Runner) -> torch.device | None:
    """The torch device a timed call must be synchronized on: a PyTorch runner's CUDA
    device (its calls return before the GPU is done); None for the others, whose outputs
    are host arrays (the call returns when they are computed)."""
    return torch.device(runner.device.torch()) if runner.accepts_torch and runner.device.is_cuda else None


def _timed_call(runner: Runner, batch: np.ndarray) -> Any:
    """The model call only; a PyTorch runner gets its input already on the device, so the
    figure is the network, not the host-to-device copy (the --ms-test path includes it)."""
    if runner.outputs == "detections":  # an end-to-end graph takes the decoded uint8 pixels
        pixels = np.ascontiguousarray(batch.transpose(0, 2, 3, 1).round().clip(0, 255).astype(np.uint8))
        return lambda: runner.infer_detections(pixels)
    if runner.accepts_torch:
        device_batch = torch.from_numpy(batch).to(runner.device.torch())
        return lambda: runner.infer_torch(device_batch)
    return lambda: runner.infer(batch)


def _ms_test_call(runner: Runner, jpeg: bytes, batch: int) -> Any:
    detector = Detector(runner, DetectorConfig(scales=MS_TEST_SCALES, batch_size=batch))

    def call() -> None:
        detector.detect([decode_image(jpeg) for _ in range(batch)])

    return call


@dataclass
class Workload:
    """One target at one batch size, ready to time, with what its repeats measured so far."""

    target: Target
    batch: int
    call: Callable[[], Any]
    device: Device  # where the runner runs (the row's device)
    sync: torch.device | None  # what each timed call is synchronized on (:func:`_sync_device`)
    repeats: list[float] = field(default_factory=list)  # per-image ms of each repeat
    samples: list[float] = field(default_factory=list)  # seconds of every timed call
    peak_host_mb: float | None = None
    peak_gpu_mb: float | None = None


def workloads(target: Target, plan: BenchPlan, runner: Runner) -> list[Workload]:
    """The target's timed calls, one per batch size of the plan."""
    jpeg = source_jpeg(plan.source) if plan.ms_test else b""
    return [
        Workload(
            target,
            batch,
            _ms_test_call(runner, jpeg, batch) if plan.ms_test else _timed_call(runner, synthetic_batch(batch, *plan.imgsz)),
            runner.device,
            _sync_device(runner),
        )
        for batch in plan.batches
    ]


def schedule(n_workloads: int, repeats: int, interleave: bool) -> list[tuple[int, int]]:
    """The order of ``(workload, repeat)`` timings.

    Sequential runs every repeat of a workload back to back. Interleaved runs rounds: one
    repeat of every workload, then the next round. A machine that slows down for a minute
    (another job, thermal or boost limits) then slows every variant of a round alike, so the
    ratios between variants stay honest where sequential timing would blame one of them."""
    if interleave:
        return [(w, r) for r in range(repeats) for w in range(n_workloads)]
    return [(w, r) for w in range(n_workloads) for r in range(repeats)]


def time_repeat(work: Workload, plan: BenchPlan, track_memory: bool = True) -> None:
    """One repeat: warm-up, then timed calls (:func:`measure`). Memory peaks are taken only
    where the process runs one artifact (sequential), else they would mix artifacts."""
    cuda = work.sync is not None  # torch's allocator: what a PyTorch runner's GPU memory is
    if track_memory and not work.repeats:
        if cuda:
            torch.cuda.reset_peak_memory_stats(work.sync)
        reset_peak_host_memory()
    times = measure(work.call, plan.policy, work.sync)
    work.repeats.append(summarize(times, work.batch).per_image * 1e3)
    work.samples.extend(times)
    if track_memory:
        work.peak_host_mb = peak_host_memory_mb()
        work.peak_gpu_mb = round(torch.cuda.max_memory_allocated(work.sync) / 2**20, 1) if cuda else None


def result_row(work: Workload, plan: BenchPlan) -> dict[str, Any]:
    """The JSON row of a timed workload."""
    target = work.target
    return {
        "artifact": target.artifact,
        "backend": target.backend,
        "precision": target.precision,
        "device": str(work.device),
        "batch": work.batch,
        "input": plan.input_label,
        "size_mb": round(target.size_mb, 2) if target.size_mb is not None else None,
        **summarize(work.samples, work.batch).to_dict(),
        # the gate's figure: median over repeats, robust to one disturbed repeat
        "per_image_ms": round(median_of_repeats(work.repeats), 4),
        "repeat_per_image_ms": [round(r, 4) for r in work.repeats],
        "peak_host_mb": work.peak_host_mb,
        "peak_gpu_mb": work.peak_gpu_mb,
    }


def bench_target(target: Target, plan: BenchPlan, runner: Runner) -> list[dict[str, Any]]:
    """Every repeat of one target, back to back (the sequential schedule)."""
    works = workloads(target, plan, runner)
    for w, _ in schedule(len(works), plan.repeats, interleave=False):
        time_repeat(works[w], plan)
    return [result_row(work, plan) for work in works]


def parity_verifier(reference: Runner, imgsz: tuple[int, int], int8: bool) -> Verifier:
    """The verifier acfd-bench judges artifacts with: the same parity images as acfd-export
    at this size and seed (one image per call, which every engine profile allows), and
    for int8 the same synthetic validation set, so a bench verdict is an export verdict."""
    validation = synthetic_validation_set(DEFAULT_VAL_IMAGES, imgsz, SYNTHETIC_VAL_SEED) if int8 else None
    return Verifier(reference, parity_inputs(imgsz, batch=1), validation, imgsz, batch=1)


def parity_row(target: Target, runner: Runner, verifier: Verifier) -> dict[str, Any]:
    """The target's verdict (the one verification layer), as the bench JSON records it."""
    return verifier.verify(runner, target.precision, target.backend).to_dict()
