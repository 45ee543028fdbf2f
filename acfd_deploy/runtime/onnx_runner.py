"""ONNX Runtime runner: any acfd ONNX file (fp32, fp16, int8), CPU or CUDA provider."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acfd_deploy.errors import AcfdError

_PRECISIONS = ("fp32", "fp16", "int8")


def _import_ort():  # noqa: ANN202
    try:
        import onnxruntime as ort
    except ImportError:
        raise AcfdError(
            "ONNX Runtime is not installed: pip install 'acfd-deploy[cpu]' (or 'acfd-deploy[gpu]' for CUDA; never both)"
        ) from None
    return ort


def default_providers(available: Sequence[str]) -> list[str]:
    """CUDA first where onnxruntime-gpu provides it, then CPU."""
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def precision_of(path: str | os.PathLike[str]) -> str:
    """From the file's ``precision`` metadata (acfd-export writes it), else its name."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        proto = None
    if proto is not None:
        for prop in proto.metadata_props:
            if prop.key == "precision" and prop.value in _PRECISIONS:
                return prop.value
    name = Path(path).name
    return "fp16" if name.endswith(".fp16.onnx") else "int8" if name.endswith(".int8.onnx") else "fp32"


class OnnxRuntimeRunner:
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        name: str | None = None,
        precision: str | None = None,
    ) -> None:
        ort = _import_ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise AcfdError(f"ONNX file not found: {self.path}")
        available = ort.get_available_providers()
        if providers is None:
            providers = default_providers(available)
        missing = [p for p in providers if p not in available]
        if missing:
            hint = " (install onnxruntime-gpu: pip install 'acfd-deploy[gpu]')" if "CUDAExecutionProvider" in missing else ""
            raise AcfdError(f"ONNX Runtime has no {', '.join(missing)} here (available: {', '.join(available)}){hint}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
        except Exception as exc:
            raise AcfdError(f"ONNX Runtime cannot load {self.path} ({' '.join(str(exc).split())[:160]})") from None
        self.providers = self.session.get_providers()
        self.precision = precision or precision_of(self.path)
        device = "cuda" if self.providers and self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.name = name or f"onnxruntime-{device}"
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise AcfdError(f"images must be [B,3,H,W], got shape {images.shape}")
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: images})))
        return outputs["boxes"].astype(np.float32, copy=False), outputs["scores"].astype(np.float32, copy=False)
