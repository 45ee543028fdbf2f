"""Where a number was measured: CPU, GPU and library versions, for every published figure."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any


def _cpuinfo(field: str) -> str | None:
    """The value of the first /proc/cpuinfo line starting with ``field`` (``None`` where
    there is none or the file is not readable)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(field):
                    return line.split(":", 1)[1]
    except OSError:
        pass
    return None


def cpu_model() -> str:
    value = _cpuinfo("model name")
    if value is not None:
        return value.strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``avx512_bf16``, ``amx_bf16``, ...; empty where
    /proc/cpuinfo is not readable)."""
    value = _cpuinfo("flags")
    return set(value.split()) if value is not None else set()


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Python and every library a figure or an artifact depends on (None: not installed):
    the one list that export.json's ``versions`` and acfd-bench's environment share."""
    import torch

    names = ("onnx", "onnxslim", "onnxsim", "tensorrt", "polygraphy", "openvino")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu"),
        **{name: package_version(name) for name in names},
    }


def environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        **library_versions(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda)
    return env
