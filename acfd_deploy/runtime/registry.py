"""One registry from a model reference to the runner that runs it, for every command.

A reference is a file path (dispatched on its suffix) or a URL (dispatched on its
scheme, ``triton://host:port/model``). Each backend is a plain record naming the class
that implements it, imported only when used, so this module never needs onnxruntime,
TensorRT, OpenVINO or tritonclient to import (the Polygraphy pattern). acfd-detect,
acfd-eval, acfd-bench and acfd-serve all resolve ``--model`` here, so a suffix one
command accepts, every command accepts.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from acfd_deploy.checkpoint import CHECKPOINT_SUFFIXES
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, parse_device, resolve_device


@dataclass(frozen=True)
class Backend:
    """A backend: the references it claims and the factory that runs them.

    ``factory`` is ``"module:callable"`` taking ``(reference, device=..., **options)``;
    ``precision`` (optional) is ``"module:callable"`` reading an artifact's precision
    without loading a session (for listings); ``devices`` are the device kinds it runs on;
    ``runtime_precisions`` are precisions it can run any of its artifacts at when asked
    (``precision=`` option; OpenVINO's bf16 hint on an fp32 IR).

    The per-backend defaults every command shares: ``batch_options`` are runner options
    for runs that pass batches of more than one image (OpenVINO's throughput mode runs a
    batch's images on parallel streams; detect, eval, bench and serve all get it from
    :func:`load_runner`'s ``batch``); ``fp32_tolerance`` is the tensor rule's tolerance for
    its fp32 artifacts where it is not the default (TensorRT picks its own kernels);
    ``baseline`` marks the backend whose fp32 rows are acfd-bench's speed baseline.
    """

    name: str
    factory: str
    suffixes: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")
    precision: str | None = None
    install: str = ""
    runtime_precisions: tuple[str, ...] = ()
    batch_options: tuple[tuple[str, Any], ...] = ()
    fp32_tolerance: float | None = None
    baseline: bool = False
    cuda_library: str = ""  # whose answer says it can use a GPU (cuda_status); "": its own name

    @property
    def device_answer(self) -> str:
        """The name :func:`~acfd_deploy.runtime.device.cuda_status` answers for: a backend
        that runs on another's library (an end-to-end ONNX graph on ONNX Runtime) names it."""
        return self.cuda_library or self.name

    def options_for(self, batch: int) -> dict[str, Any]:
        """The runner options this backend takes by default for batches of ``batch`` images."""
        return dict(self.batch_options) if batch > 1 else {}


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add (or replace) a backend; the first backend registered for a suffix is the
    default for it, others are reached with ``backend=NAME``."""
    _BACKENDS[backend.name] = backend
    return backend


def backends() -> list[Backend]:
    return list(_BACKENDS.values())


register(
    Backend(
        "torch",
        "acfd_deploy.runtime.torch_runner:checkpoint_runner",
        suffixes=CHECKPOINT_SUFFIXES,
        precision="acfd_deploy.runtime.torch_runner:checkpoint_precision",
    )
)
register(
    Backend(
        "onnxruntime",
        "acfd_deploy.runtime.end2end:onnxruntime_runner",
        suffixes=(".onnx",),
        precision="acfd_deploy.runtime.onnx_runner:precision_of",
        install="pip install 'acfd-deploy[cpu]' (or [gpu] for CUDA)",
        baseline=True,  # "vs ORT fp32": the figure CPU deployment is judged by
    )
)
register(
    Backend(
        "tensorrt",
        "acfd_deploy.runtime.tensorrt_runner:TensorRTRunner",
        suffixes=(".plan", ".engine"),
        devices=("cuda",),
        precision="acfd_deploy.runtime.plan:plan_precision",
        install="pip install 'acfd-deploy[tensorrt]' on a machine with an NVIDIA GPU",
        fp32_tolerance=1e-3,  # TensorRT fp32 picks its own kernels (TF32 off): until measured on a GPU
    )
)
# a model on a Triton server (acfd-serve's, or the stock server on acfd-export --triton-repo):
# the network runs there, so any --device is accepted (and left to the server); precision
# comes from the server's model config once connected, "unknown" before
register(
    Backend(
        "triton",
        "acfd_deploy.runtime.triton_runner:TritonRunner",
        schemes=("triton",),
        install="pip install 'acfd-deploy[serve]'",
    )
)


register(
    Backend(
        "openvino",
        "acfd_deploy.runtime.end2end:openvino_runner",
        suffixes=(".xml", ".onnx"),
        devices=("cpu",),
        precision="acfd_deploy.runtime.openvino_model:file_precision",
        install="pip install 'acfd-deploy[openvino]'",
        runtime_precisions=("bf16",),
        batch_options=(("mode", "throughput"),),
    )
)

# an AOTInductor package (acfd-export --pt2): compiled for one device kind, which its
# metadata names; the runner refuses a package compiled for another before loading it
register(
    Backend(
        "pt2",
        "acfd_deploy.runtime.pt2_runner:Pt2Runner",
        suffixes=(".pt2",),
        precision="acfd_deploy.runtime.pt2_package:package_precision",
        install="a C++ compiler to export (g++); torch alone to run",
    )
)


def suffixes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for b in _BACKENDS.values() for s in b.suffixes))


def is_url(reference: str | os.PathLike[str]) -> bool:
    return isinstance(reference, str) and "://" in reference


def backend_for(reference: str | os.PathLike[str], backend: str | None = None) -> Backend:
    """The backend that runs ``reference``: ``backend`` if given (it must accept the
    reference), else the first registered for its scheme or suffix."""
    if backend is not None and backend not in _BACKENDS:
        raise AcfdError(f"unknown backend {backend!r}; choose from {', '.join(_BACKENDS)}")
    if is_url(reference):
        scheme = urlparse(str(reference)).scheme.lower()
        claims = [b for b in _BACKENDS.values() if scheme in b.schemes]
        what = f"URL scheme {scheme}://"
        known = ", ".join(f"{s}://" for b in _BACKENDS.values() for s in b.schemes) or "none"
    else:
        suffix = Path(reference).suffix.lower()
        claims = [b for b in _BACKENDS.values() if suffix in b.suffixes]
        what = f"model type {suffix or '(no suffix)'!r}"
        known = ", ".join(suffixes())
    if backend is not None:
        chosen = _BACKENDS[backend]
        if chosen not in claims:
            raise AcfdError(f"the {backend} backend does not run {reference} ({what})")
        return chosen
    if not claims:
        raise AcfdError(f"unknown {what} for {reference}; expected one of {known}")
    return claims[0]


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def backend_named(name: str) -> Backend:
    if name not in _BACKENDS:
        raise AcfdError(f"unknown backend {name!r}; choose from {', '.join(_BACKENDS)}")
    return _BACKENDS[name]


def load_runner(
    reference: str | os.PathLike[str], device: str | Device = "auto", backend: str | None = None, batch: int = 1, **options: Any
) -> Runner:
    """A runner for a checkpoint (``.pth``/``.pt``/``.safetensors``, folded, run in
    PyTorch), an ONNX file, a TensorRT plan, any other registered artifact, or a server
    URL. ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for every backend;
    ``batch`` is the most images the caller passes per call (the backend's
    ``batch_options`` apply above one; ``options`` given here win over them)."""
    chosen = backend_for(reference, backend)
    dev = parse_device(device)
    if dev.kind != "auto" and dev.kind not in chosen.devices:
        raise AcfdError(f"--device {dev}: the {chosen.name} backend runs on {' or '.join(chosen.devices)} only ({reference})")
    if not is_url(reference):  # a server (a URL) decides where its own model runs
        reference = require_file(reference, "model file")
        if dev.is_cuda or (dev.kind == "auto" and "cuda" in chosen.devices and len(chosen.devices) > 1):
            # the backend's own answer: a CPU-only torch does not stop onnxruntime-gpu or TensorRT
            dev = resolve_device(dev, backend=chosen.device_answer)
    if dev.kind == "auto" and len(chosen.devices) == 1:  # a backend with one kind of device runs there
        dev = Device(chosen.devices[0], 0)
    try:
        factory = _resolve(chosen.factory)
    except ModuleNotFoundError as exc:  # the backend's own dependency, at import time
        hint = f": {chosen.install}" if chosen.install else ""
        raise AcfdError(f"the {chosen.name} backend is not available here ({exc.name} is missing){hint}") from None
    runner: Runner = factory(reference, device=dev, **{**chosen.options_for(batch), **options})
    runner.backend = chosen.name
    return runner


def artifact_precision(reference: str | os.PathLike[str], backend: str | None = None) -> str:
    """The precision an artifact declares (metadata, sidecar), without running it;
    ``fp32`` for checkpoints and ``unknown`` where only a running runner can tell."""
    chosen = backend_for(reference, backend)
    if chosen.precision is None:
        return "unknown"
    return str(_resolve(chosen.precision)(reference))
