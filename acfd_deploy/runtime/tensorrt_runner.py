"""TensorRT runner: a plan file loaded with its sidecar JSON, run through Polygraphy.

An engine is bound to the TensorRT version and GPU that built it: the sidecar is checked
before deserializing, and a mismatch is a clear error that says to rebuild."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError


def _import_backend() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
        from polygraphy.backend import trt as poly_trt
    except ImportError:
        raise AcfdError(
            "TensorRT is not installed: pip install 'acfd-deploy[tensorrt]' on a machine with an NVIDIA GPU (TensorRT 10 or 11)"
        ) from None
    return trt, poly_trt


class TensorRTRunner:
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])``."""

    def __init__(self, plan_path: str | os.PathLike[str], name: str | None = None) -> None:
        from acfd_deploy.export.tensorrt import check_sidecar, gpu_info, profile_covers, read_sidecar
        from acfd_deploy.fileio import sha256_file

        self.path = Path(plan_path)
        if not self.path.is_file():
            raise AcfdError(f"TensorRT plan not found: {self.path}")
        trt, poly_trt = _import_backend()
        self.sidecar = read_sidecar(self.path)
        check_sidecar(self.sidecar, str(trt.__version__), gpu_info(), sha256_file(self.path))
        self._profile_covers = profile_covers
        self.profile = self.sidecar["profile"]
        self.precision = str(self.sidecar.get("precision", "fp32"))
        self.name = name or "tensorrt"
        engine = poly_trt.engine_from_bytes(self.path.read_bytes())
        self._runner = poly_trt.TrtRunner(engine, name=self.name)
        self._runner.activate()

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if not self._profile_covers(self.profile, images.shape):
            raise AcfdError(
                f"input shape {list(images.shape)} is outside the engine's profile "
                f"(min {self.profile['min']}, max {self.profile['max']}); rebuild with acfd-export --imgsz/--batch"
            )
        outputs = self._runner.infer({"images": images})
        return np.asarray(outputs["boxes"], np.float32), np.asarray(outputs["scores"], np.float32)

    def close(self) -> None:
        runner = getattr(self, "_runner", None)
        if runner is not None and getattr(runner, "is_active", False):
            runner.deactivate()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
