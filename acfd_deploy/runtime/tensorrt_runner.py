"""TensorRT runner: a plan file loaded with its sidecar JSON, run through Polygraphy.

An engine is bound to the TensorRT version and GPU that built it: the sidecar is checked
against the GPU the plan is about to run on before deserializing, and a mismatch is a
clear error that says to rebuild."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file, sha256_file
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, parse_device
from acfd_deploy.runtime.plan import check_sidecar, gpu_info, profile_covers, read_sidecar


def _import_backend() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
        from polygraphy.backend import trt as poly_trt
    except ImportError:
        raise AcfdError(
            "TensorRT is not installed: pip install 'acfd-deploy[tensorrt]' on a machine with an NVIDIA GPU (TensorRT 10 or 11)"
        ) from None
    return trt, poly_trt


class TensorRTRunner(Runner):
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])``."""

    path: Path  # always a file for this runner

    _runner: Any = None  # Polygraphy's TrtRunner once activated; None again once closed

    def __init__(self, plan_path: str | os.PathLike[str], device: str | Device = "cuda", name: str | None = None) -> None:
        self.path = require_file(plan_path, "TensorRT plan")
        dev = parse_device(device)
        if dev.kind == "cpu":
            raise AcfdError(f"{self.path.name} is a TensorRT engine, which runs on an NVIDIA GPU only; --device cpu cannot run it")
        self.device_index = dev.index
        self.device = Device("cuda", dev.index)
        trt, poly_trt = _import_backend()
        self.sidecar = read_sidecar(self.path)
        check_sidecar(self.sidecar, str(trt.__version__), gpu_info(self.device_index), sha256_file(self.path))
        self.profile = self.sidecar["profile"]
        self.min_size = int(min(self.profile["min"][2:]))  # the profile's smallest image side
        mean = self.sidecar.get("pixel_mean")
        if isinstance(mean, list) and len(mean) == 3:
            self.pixel_mean = (float(mean[0]), float(mean[1]), float(mean[2]))
        self.precision = str(self.sidecar.get("precision", "fp32"))
        self.name = name or f"tensorrt-cuda:{self.device_index}"
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(self.device_index)
        engine = poly_trt.engine_from_bytes(self.path.read_bytes())
        self._runner = poly_trt.TrtRunner(engine, name=self.name)
        self._runner.activate()

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if not profile_covers(self.profile, images.shape):
            raise AcfdError(
                f"input shape {list(images.shape)} is outside the engine's profile "
                f"(min {self.profile['min']}, max {self.profile['max']}); rebuild with acfd-export --imgsz/--batch"
            )
        outputs = self._runner.infer({"images": images})
        return np.asarray(outputs["boxes"], np.float32), np.asarray(outputs["scores"], np.float32)

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None and runner.is_active:
            runner.deactivate()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
