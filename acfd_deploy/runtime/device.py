"""One device vocabulary for every command and backend: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

Each backend maps the same choice onto its own knob (a torch device, an ONNX Runtime
provider list, a TensorRT device index), so ``--device cpu`` means CPU everywhere, even
where onnxruntime-gpu would otherwise pick CUDA on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acfd_deploy.errors import AcfdError, one_line

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


CUDA_RUNTIME = "cuda-runtime"  # cuda_status's name for "any CUDA program", not a runner backend


@dataclass(frozen=True)
class CudaAnswer:
    """Whether a backend can run on a CUDA device here, on how many, and why (or why not)."""

    usable: bool
    count: int
    reason: str


def _torch_gpus() -> tuple[int, str]:
    try:
        import torch
    except ImportError:
        return 0, "torch is not installed"
    try:
        if torch.version.cuda is None:
            return 0, "this torch is a CPU-only build"
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken driver must read as "no GPU", not crash a CPU run
        return 0, "torch cannot initialize CUDA"
    return count, f"torch sees {count} CUDA device(s)" if count else "torch sees no CUDA device"


def _cudart_gpus() -> tuple[int, str]:
    """The CUDA runtime's own count (``cudaGetDeviceCount``), which does not need a CUDA
    build of torch: what TensorRT runs on."""
    import ctypes

    for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cudaGetDeviceCount(ctypes.byref(count)) != 0:
            return 0, "the CUDA runtime sees no device"
        return count.value, f"the CUDA runtime sees {count.value} device(s)" if count.value else "the CUDA runtime sees no device"
    return 0, "no CUDA runtime library (libcudart) here"


def _any_gpus() -> tuple[int, str]:
    """The CUDA runtime's count, else torch's (a CUDA torch brings its own runtime)."""
    count, why = _cudart_gpus()
    if count:
        return count, why
    torch_count, torch_why = _torch_gpus()
    return (torch_count, torch_why) if torch_count else (0, f"{why}; {torch_why}")


def _onnxruntime() -> CudaAnswer:
    try:
        import onnxruntime as ort
    except ImportError:
        return CudaAnswer(False, 0, "onnxruntime is not installed")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return CudaAnswer(
            False,
            0,
            f"this ONNX Runtime has no CUDAExecutionProvider (available: {', '.join(available)}); "
            "pip install 'acfd-deploy[gpu]' (onnxruntime-gpu instead of onnxruntime)",
        )
    count, why = _any_gpus()
    # onnxruntime-gpu may bring a CUDA runtime neither ctypes nor torch finds: one GPU at least
    return CudaAnswer(True, max(count, 1), f"ONNX Runtime has the CUDAExecutionProvider; {why}")


def _installed(name: str) -> bool:
    """Whether a package can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _tensorrt() -> CudaAnswer:
    if not _installed("tensorrt"):
        return CudaAnswer(False, 0, "tensorrt is not installed: pip install 'acfd-deploy[tensorrt]' on a machine with an NVIDIA GPU")
    if not _installed("polygraphy"):
        return CudaAnswer(False, 0, "polygraphy is not installed: pip install 'acfd-deploy[tensorrt]'")
    count, why = _any_gpus()
    if count < 1:
        return CudaAnswer(False, 0, f"no CUDA GPU ({why})")
    try:
        import tensorrt as trt
    except Exception as exc:  # a broken install (missing libnvinfer) imports badly
        return CudaAnswer(False, 0, f"tensorrt does not import ({one_line(exc, 80)})")
    return CudaAnswer(True, count, f"TensorRT {trt.__version__}; {why}")


def cuda_status(backend: str = "torch") -> CudaAnswer:
    """The one answer to "can ``backend`` run on a CUDA device here?", asked by the
    registry, export, bench and serve alike, so that they never disagree (a CPU-only torch
    on a GPU machine: TensorRT and onnxruntime-gpu can use the GPU, PyTorch cannot).

    ``torch`` (and backends that run in PyTorch): ``torch.cuda``. ``onnxruntime``: the
    CUDAExecutionProvider is available. ``tensorrt``: TensorRT and Polygraphy import and
    the CUDA runtime sees a device. ``openvino``: never (its CPU plugin only, here).
    ``cuda-runtime``: any CUDA program (a Triton server process): the CUDA runtime or
    torch sees a device. ``triton``: the server decides where its model runs; the device is the client's side
    (where the pipeline's post-processing runs), which is torch's answer."""
    if backend == "onnxruntime":
        return _onnxruntime()
    if backend == "tensorrt":
        return _tensorrt()
    if backend == "openvino":
        return CudaAnswer(False, 0, "OpenVINO runs on the CPU only here")
    if backend == CUDA_RUNTIME:
        count, why = _any_gpus()
        return CudaAnswer(count > 0, count, why)
    count, why = _torch_gpus()
    return CudaAnswer(count > 0, count, why)


def cuda_device_count(backend: str = "torch") -> int:
    """GPUs ``backend`` can use here (0 where it can use none)."""
    answer = cuda_status(backend)
    return answer.count if answer.usable else 0


def resolve_device(text: str | Device | None, backend: str = "torch") -> Device:
    """``auto`` becomes ``cuda`` where ``backend`` can use a GPU (:func:`cuda_status`),
    else ``cpu``; an explicit CUDA device that ``backend`` cannot use is bad input."""
    device = parse_device(text)
    answer = cuda_status(backend)
    count = answer.count if answer.usable else 0
    if device.kind == "auto":
        return Device("cuda", 0) if count > 0 else Device("cpu")
    if device.is_cuda and device.index >= count:
        if count == 0:
            raise AcfdError(f"--device {device}: no CUDA device is visible here ({answer.reason})")
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
