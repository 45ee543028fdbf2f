"""One call from a path to a runner, whatever the artifact: ``load_runner(path)``.

The ONNX Runtime and TensorRT runners are imported only when asked for, so this module
never needs onnxruntime or TensorRT to import.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

from acfd_deploy.checkpoint import CHECKPOINT_SUFFIXES as TORCH_SUFFIXES
from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.base import Runner

# suffix -> (module, class names it may export, first found wins)
BACKENDS = {
    ".onnx": ("acfd_deploy.runtime.onnx_runner", ("OnnxRuntimeRunner",)),
    ".plan": ("acfd_deploy.runtime.tensorrt_runner", ("TensorRTRunner", "TrtRunner", "TensorrtRunner")),
}


def load_runner(path: str | os.PathLike[str], device: str = "cpu") -> Runner:
    """A runner for a ``.pth``/``.pt``/``.safetensors`` checkpoint (reparameterized, then
    run in PyTorch), an ``.onnx`` file (ONNX Runtime) or a ``.plan`` engine (TensorRT)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise AcfdError(f"model file not found: {path}")
    if suffix in TORCH_SUFFIXES:
        from acfd_deploy import load_model, reparameterize
        from acfd_deploy.runtime.torch_runner import TorchRunner

        return TorchRunner(reparameterize(load_model(path)), device=device, name=f"torch-{device}:{path.name}")
    if suffix not in BACKENDS:
        raise AcfdError(f"unknown model type {path.suffix!r} for {path}; expected one of {', '.join(TORCH_SUFFIXES + tuple(BACKENDS))}")
    module_name, class_names = BACKENDS[suffix]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise AcfdError(f"the {suffix} backend is not available here ({exc.name} is missing)") from None
    runner_cls = next((getattr(module, n) for n in class_names if hasattr(module, n)), None)
    if runner_cls is None:
        raise AcfdError(f"the {suffix} backend is not available here ({module_name} has no {' or '.join(class_names)})")
    params = inspect.signature(runner_cls).parameters
    takes_device = "device" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    try:
        return runner_cls(path, device=device) if takes_device else runner_cls(path)
    except AcfdError:
        raise
    except Exception as exc:  # a corrupt or foreign file is bad input (exit 2), not a crash; --debug shows the chain
        raise AcfdError(f"cannot load {path} with {runner_cls.__name__}: {' '.join(str(exc).split())[:200] or type(exc).__name__}") from exc
