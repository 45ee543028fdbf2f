"""ONNX Runtime runner: any acfd ONNX file (fp32, fp16, int8), CPU or CUDA provider."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError, one_line
from acfd_deploy.fileio import require_file
from acfd_deploy.runtime.base import Runner, contract_from_metadata
from acfd_deploy.runtime.device import Device, default_threads, parse_device

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


def providers_for(device: str | Device, available: Sequence[str]) -> list[str | tuple[str, dict[str, str]]]:
    """The provider list for ``--device``: ``cpu`` is the CPU provider alone (even where
    onnxruntime-gpu is installed), ``cuda[:N]`` CUDA on GPU N (bad input where this
    ONNX Runtime has no CUDA provider), ``auto`` CUDA where available, else CPU."""
    dev = parse_device(device)
    if dev.kind == "cpu":
        return ["CPUExecutionProvider"]
    if dev.kind == "auto":
        return list(default_providers(available))
    if "CUDAExecutionProvider" not in available:
        raise AcfdError(
            f"--device {dev}: this ONNX Runtime has no CUDAExecutionProvider (available: {', '.join(available)}); "
            "pip install 'acfd-deploy[gpu]' (onnxruntime-gpu instead of onnxruntime)"
        )
    return [("CUDAExecutionProvider", {"device_id": str(dev.index)}), "CPUExecutionProvider"]


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """An ONNX file's ``metadata_props``, read without the weights' external data
    (raises what ``onnx.load`` raises for a file it cannot read)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def recorded_precision(path: str | os.PathLike[str]) -> str | None:
    """The file's ``precision`` metadata (acfd-export writes it), read without the
    weights; ``None`` where the file cannot be read or records no valid precision."""
    try:
        value = onnx_metadata(path).get("precision")
    except Exception:
        return None
    return value if value in _PRECISIONS else None


def precision_of(path: str | os.PathLike[str]) -> str:
    """From the file's ``precision`` metadata (acfd-export writes it), else its name."""
    recorded = recorded_precision(path)
    if recorded is not None:
        return recorded
    name = Path(path).name
    return "fp16" if name.endswith(".fp16.onnx") else "int8" if name.endswith(".int8.onnx") else "fp32"


def _device_of(providers: Sequence[str], options: dict[str, dict[str, str]]) -> Device:
    """Where a session runs: the GPU of its CUDA provider where that comes first, else the CPU."""
    if providers and providers[0] == "CUDAExecutionProvider":
        return Device("cuda", int(options.get("CUDAExecutionProvider", {}).get("device_id", 0) or 0))
    return Device("cpu")


def _load_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """The exceptions ONNX Runtime raises for a file it cannot use (protobuf, graph or
    model errors); anything else loading raises is a bug and keeps its traceback."""
    state = getattr(getattr(ort, "capi", None), "onnxruntime_pybind11_state", None)
    names = ("InvalidProtobuf", "InvalidGraph", "Fail", "NoSuchFile", "NotImplemented", "InvalidArgument")
    found = tuple(getattr(state, n) for n in names if state is not None and isinstance(getattr(state, n, None), type))
    return (*found, OSError)


class OnnxRuntimeRunner(Runner):
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])``."""

    path: Path  # always a file for this runner

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | Device = "auto",
        providers: Sequence[str | tuple[str, dict[str, str]]] | None = None,
        threads: int | None = None,
        name: str | None = None,
        precision: str | None = None,
    ) -> None:
        ort = _import_ort()
        self.path = require_file(path, "ONNX file")
        available = ort.get_available_providers()
        if providers is None:
            providers = providers_for(device, available)
        missing = [p for p in (q if isinstance(q, str) else q[0] for q in providers) if p not in available]
        if missing:
            hint = " (install onnxruntime-gpu: pip install 'acfd-deploy[gpu]')" if "CUDAExecutionProvider" in missing else ""
            raise AcfdError(f"ONNX Runtime has no {', '.join(missing)} here (available: {', '.join(available)}){hint}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or default_threads()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
        except _load_errors(ort) as exc:  # a corrupt or foreign file: bad input, not a bug
            raise AcfdError(f"ONNX Runtime cannot load {self.path} ({one_line(exc, 160)})") from None
        self.providers = self.session.get_providers()
        self.precision = precision or precision_of(self.path)
        self.device = _device_of(self.providers, self.session.get_provider_options())
        self.name = name or f"onnxruntime-{self.device.kind}"
        self.min_size, self.pixel_mean = contract_from_metadata(self.session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self.session.get_inputs(), [o.name for o in self.session.get_outputs()]
        self._check_io([i.name for i in inputs], outputs)
        self.input_name = inputs[0].name
        self.output_names = outputs

    def _check_io(self, inputs: list[str], outputs: list[str]) -> None:
        if len(inputs) != 1 or not {"boxes", "scores"} <= set(outputs):
            raise AcfdError(
                f"{self.path} is not an ACFD model: expected one input (images) and outputs boxes and scores, "
                f"found inputs {inputs} and outputs {outputs}"
            )

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise AcfdError(f"images must be [B,3,H,W], got shape {images.shape}")
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: images})))
        return outputs["boxes"].astype(np.float32, copy=False), outputs["scores"].astype(np.float32, copy=False)
