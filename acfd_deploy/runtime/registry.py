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

from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, parse_device


@dataclass(frozen=True)
class Backend:
    """A backend: the references it claims and the factory that runs them.

    ``factory`` is ``"module:callable"`` taking ``(reference, device=..., **options)``;
    ``precision`` (optional) is ``"module:callable"`` reading an artifact's precision
    without loading a session (for listings); ``devices`` are the device kinds it runs on;
    ``runtime_precisions`` are precisions it can run any of its artifacts at when asked
    (``precision=`` option; OpenVINO's bf16 hint on an fp32 IR).
    """

    name: str
    factory: str
    suffixes: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")
    precision: str | None = None
    install: str = ""
    runtime_precisions: tuple[str, ...] = ()


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add (or replace) a backend; the first backend registered for a suffix is the
    default for it, others are reached with ``backend=NAME``."""
    _BACKENDS[backend.name] = backend
    return backend


def backends() -> list[Backend]:
    return list(_BACKENDS.values())


register(Backend("torch", "acfd_deploy.runtime.torch_runner:checkpoint_runner", suffixes=(".pth", ".pt", ".safetensors")))
register(
    Backend(
        "onnxruntime",
        "acfd_deploy.runtime.onnx_runner:OnnxRuntimeRunner",
        suffixes=(".onnx",),
        precision="acfd_deploy.runtime.onnx_runner:precision_of",
        install="pip install 'acfd-deploy[cpu]' (or [gpu] for CUDA)",
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
        "acfd_deploy.runtime.openvino_runner:OpenVinoRunner",
        suffixes=(".xml", ".onnx"),
        devices=("cpu",),
        precision="acfd_deploy.runtime.openvino_model:file_precision",
        install="pip install 'acfd-deploy[openvino]'",
        runtime_precisions=("bf16",),
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


def load_runner(reference: str | os.PathLike[str], device: str | Device = "auto", backend: str | None = None, **options: Any) -> Runner:
    """A runner for a checkpoint (``.pth``/``.pt``/``.safetensors``, folded, run in
    PyTorch), an ONNX file, a TensorRT plan, any other registered artifact, or a server
    URL. ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for every backend."""
    chosen = backend_for(reference, backend)
    dev = parse_device(device)
    if dev.kind != "auto" and dev.kind not in chosen.devices:
        raise AcfdError(f"--device {dev}: the {chosen.name} backend runs on {' or '.join(chosen.devices)} only ({reference})")
    if not is_url(reference):
        path = Path(reference)
        if not path.is_file():
            raise AcfdError(f"model file not found: {path}" if not path.exists() else f"model path is not a file: {path}")
        reference = path
    if dev.kind == "auto" and len(chosen.devices) == 1:  # a backend with one kind of device runs there
        dev = Device(chosen.devices[0], 0)
    try:
        factory = _resolve(chosen.factory)
    except ModuleNotFoundError as exc:  # the backend's own dependency, at import time
        hint = f": {chosen.install}" if chosen.install else ""
        raise AcfdError(f"the {chosen.name} backend is not available here ({exc.name} is missing){hint}") from None
    return factory(reference, device=dev, **options)


def artifact_precision(reference: str | os.PathLike[str], backend: str | None = None) -> str:
    """The precision an artifact declares (metadata, sidecar), without running it;
    ``fp32`` for checkpoints and ``unknown`` where only a running runner can tell."""
    chosen = backend_for(reference, backend)
    if chosen.precision is None:
        return "fp32" if chosen.name == "torch" else "unknown"
    return str(_resolve(chosen.precision)(reference))
