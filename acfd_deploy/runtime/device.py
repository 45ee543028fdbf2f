"""One device vocabulary for every command and backend: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

Each backend maps the same choice onto its own knob (a torch device, an ONNX Runtime
provider list, a TensorRT device index), so ``--device cpu`` means CPU everywhere, even
where onnxruntime-gpu would otherwise pick CUDA on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acfd_deploy.errors import AcfdError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Device:
    """A parsed ``--device``: ``kind`` is ``auto``, ``cpu`` or ``cuda``; ``index`` the GPU."""

    kind: str
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def torch(self) -> str:
        """The torch device string (``auto`` must be resolved first)."""
        if self.kind == "auto":
            raise ValueError("resolve an auto device before asking for its torch name")
        return f"cuda:{self.index}" if self.is_cuda else "cpu"

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.is_cuda else self.kind


def parse_device(text: str | Device | None) -> Device:
    """``auto`` (the default), ``cpu``, ``cuda`` (GPU 0) or ``cuda:N``."""
    if isinstance(text, Device):
        return text
    spec = (text or "auto").strip().lower()
    match = _PATTERN.match(spec)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise AcfdError(f"unknown device {text!r}; choose from {DEVICE_CHOICES}")
    return Device(match.group(1), int(match.group(2) or 0))


def cuda_device_count() -> int:
    """GPUs torch can use; 0 without a CUDA build of torch."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken driver must read as "no GPU", not crash a CPU run
        return 0


def resolve_device(text: str | Device | None) -> Device:
    """``auto`` becomes ``cuda`` where torch sees a GPU, else ``cpu``; an explicit CUDA
    device that does not exist is bad input."""
    device = parse_device(text)
    count = cuda_device_count()
    if device.kind == "auto":
        return Device("cuda", 0) if count > 0 else Device("cpu")
    if device.is_cuda and device.index >= count:
        if count == 0:
            raise AcfdError(f"--device {device}: no CUDA device is visible here (torch sees none)")
        raise AcfdError(f"--device {device}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return device


def default_threads() -> int | None:
    """Threads for ONNX Runtime and OpenVINO where the caller sets none: the environment's
    ``ACFD_NUM_THREADS`` (like ``OMP_NUM_THREADS`` for PyTorch), else the backend's own
    default (all cores). Several processes sharing a machine (test workers, replicas)
    each set it, so that their thread pools do not fight over the same cores."""
    import os

    value = os.environ.get("ACFD_NUM_THREADS", "").strip()
    if not value:
        return None
    try:
        threads = int(value)
    except ValueError:
        raise AcfdError(f"ACFD_NUM_THREADS must be a positive integer, got {value!r}") from None
    if threads < 1:
        raise AcfdError(f"ACFD_NUM_THREADS must be a positive integer, got {value!r}")
    return threads
