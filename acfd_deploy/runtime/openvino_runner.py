"""OpenVINO runner (CPU): acfd ONNX files (fp32, int8 Q/DQ) and OpenVINO IR (``.xml`` + ``.bin``).

The inference precision is always pinned and read back. OpenVINO's CPU plugin runs
floating-point layers in bf16 by default wherever the CPU has native bf16 (AVX512_BF16,
AMX), so an unpinned "fp32" run is silently a bf16 run: a parity check would test
something else than it says. Here ``INFERENCE_PRECISION_HINT`` is f32 unless bf16 is
asked for, and the hint the compiled model reports is kept in ``inference_precision``.

The model stays dynamic (batch, height, width) by default: OpenVINO's CPU plugin runs
dynamic shapes natively; the first call at a new shape costs about 30 ms more on the paper
network (kernels are prepared per shape and kept), none after. ``static_shapes=True``
compiles the model once per input shape instead (about 0.5-1 s each, the last
``STATIC_CACHE`` shapes kept), which measured 3-5% faster per call at 640x640.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.runtime.base import Runner, contract_from_metadata
from acfd_deploy.runtime.device import Device, default_threads, parse_device
from acfd_deploy.runtime.openvino_model import _import_ov, _one_line, acfd_metadata, artifact_precision, cpu_supports_bf16, read_model
from acfd_deploy.runtime.openvino_profile import LayerTime

MODES = ("latency", "throughput")
STATIC_CACHE = 4  # compiled shapes kept with static_shapes=True
# what the runner may be asked for; "fp32"/"int8" must agree with the artifact
_PRECISIONS = ("fp32", "bf16", "int8", "fp16")
_HINTS = {"f32": "f32", "bf16": "bf16", "float32": "f32", "bfloat16": "bf16", "f16": "f16", "float16": "f16"}


class OpenVinoRunner(Runner):
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])`` with
    OpenVINO on the CPU.

    ``precision``: ``None`` runs the artifact as it is (fp32, or int8 for a Q/DQ file) with
    floating-point layers pinned to f32; ``"bf16"`` runs those layers in bf16 (an int8
    file stays int8, its fp32 rest becomes bf16). ``mode``: ``latency`` (one stream, all
    threads on one request) or ``throughput`` (several streams; ``infer`` splits a batch
    into sub-batches run concurrently; ``streams`` how many, default OpenVINO's choice for
    this CPU). ``threads``: ``None`` uses all cores.
    ``static_shapes``: compile once per input shape (see the module docstring)."""

    path: Path  # always a file for this runner

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | Device = "cpu",
        precision: str | None = None,
        threads: int | None = None,
        mode: str = "latency",
        name: str | None = None,
        profile: bool = False,
        static_shapes: bool = False,
        streams: int | None = None,
    ) -> None:
        ov = _import_ov()
        if parse_device(device).kind not in ("cpu", "auto"):
            raise AcfdError(f"the OpenVINO runner supports device 'cpu' only, not {str(device)!r}")
        self.device = Device("cpu")
        if mode not in MODES:
            raise AcfdError(f"unknown OpenVINO mode {mode!r}; choose from {', '.join(MODES)}")
        if precision is not None and precision not in _PRECISIONS:
            raise AcfdError(f"unknown precision {precision!r} for OpenVINO; choose from fp32, bf16, int8")
        if threads is not None and threads < 1:
            raise AcfdError(f"threads must be at least 1, got {threads}")
        if streams is not None and (streams < 1 or mode != "throughput"):
            raise AcfdError(f"streams must be at least 1, and only the throughput mode has several (got {streams} in {mode} mode)")
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".onnx", ".xml"):
            raise AcfdError(f"OpenVINO reads .onnx files and IR (.xml with its .bin), not {self.path.name}")
        require_file(self.path, "ONNX file" if suffix == ".onnx" else "OpenVINO IR")
        if suffix == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise AcfdError(f"OpenVINO IR {self.path} has no weights file beside it ({self.path.with_suffix('.bin').name} is missing)")
        self.core = ov.Core()
        model = read_model(self.path)
        self._check_io(model)
        self.artifact_precision = artifact_precision(model)
        self.min_size, self.pixel_mean = contract_from_metadata(acfd_metadata(model))
        if precision in ("fp32", "int8", "fp16") and precision != self.artifact_precision:
            raise AcfdError(
                f"{self.path.name} is a {self.artifact_precision} artifact, not {precision} "
                "(OpenVINO runs a file in its own precision; only bf16 may be asked for on top)"
            )
        want_bf16 = precision == "bf16"
        if want_bf16:
            ok, why = cpu_supports_bf16()
            if not ok:
                raise AcfdError(f"bf16 was asked for, but {why}")
        self.mode = mode
        self.threads = threads
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if want_bf16 else "f32",
            "PERFORMANCE_HINT": mode.upper(),
            # ACCURACY would also pin precision, but per layer OpenVINO may still pick
            # other kernels; the explicit hint is what we state and read back
            "EXECUTION_MODE_HINT": "PERFORMANCE",
        }
        threads = threads or default_threads()
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if streams is not None:  # else the throughput hint picks them for this CPU
            config["NUM_STREAMS"] = int(streams)
        if profile:
            config["PERF_COUNT"] = True
        self.config = dict(config)
        try:
            self.compiled = self.core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise AcfdError(f"OpenVINO cannot compile {self.path} for the CPU ({_one_line(exc)})") from None
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = _HINTS.get(getattr(hint, "get_type_name", lambda: str(hint))(), str(hint))
        if self.inference_precision != ("bf16" if want_bf16 else "f32"):
            raise AcfdError(
                f"OpenVINO compiled {self.path.name} with inference precision {self.inference_precision}, not the one asked for"
            )
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.compiled_threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.num_requests = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))) if mode == "throughput" else 1
        self.precision = "bf16" if want_bf16 and self.artifact_precision != "int8" else self.artifact_precision
        mixed = "-bf16" if want_bf16 and self.precision != "bf16" else ""  # int8 convolutions, bf16 for the rest
        self.name = name or f"openvino-cpu-{self.precision}{mixed}"
        self._requests = [self.compiled.create_infer_request() for _ in range(self.num_requests)]
        self._lock = threading.Lock()  # infer requests are not shareable between threads
        self.static_shapes = static_shapes
        self._model = model if static_shapes else None
        self._static: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def _request_for(self, shape: tuple[int, ...], index: int = 0) -> Any:
        """The infer request to run ``shape`` on: the dynamic model's, or (static_shapes)
        that of a model compiled for exactly this shape, compiled on first sight."""
        if self._model is None:
            return self._requests[index]
        if shape not in self._static:
            model = self._model.clone()
            model.reshape(list(shape))
            try:
                compiled = self.core.compile_model(model, "CPU", self.config)
            except Exception as exc:
                raise AcfdError(f"OpenVINO cannot compile {self.path.name} for input {list(shape)} ({_one_line(exc)})") from None
            self._static[shape] = [compiled.create_infer_request() for _ in range(self.num_requests)]
            while len(self._static) > STATIC_CACHE:
                self._static.popitem(last=False)
        self._static.move_to_end(shape)
        return self._static[shape][index]

    @staticmethod
    def _check_io(model: Any) -> None:
        inputs = [i.get_any_name() for i in model.inputs]
        outputs = [o.get_any_name() for o in model.outputs]
        if len(inputs) != 1 or sorted(outputs) != ["boxes", "scores"]:
            raise AcfdError(f"not an acfd model: inputs {inputs}, outputs {outputs} (expected one image input, boxes and scores)")

    def describe(self) -> dict[str, Any]:
        """What was compiled, for tables and manifests."""
        return {
            "name": self.name,
            "path": str(self.path),
            "artifact_precision": self.artifact_precision,
            "precision": self.precision,
            "inference_precision_hint": self.inference_precision,
            "mode": self.mode,
            "streams": self.streams,
            "threads": self.compiled_threads,
            "infer_requests": self.num_requests,
            "static_shapes": self.static_shapes,
            "openvino": _import_ov().get_version(),
        }

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise AcfdError(f"images must be [B,3,H,W], got shape {images.shape}")
        with self._lock:
            if self.num_requests == 1 or images.shape[0] == 1:
                return self._run(images)
            return self._run_parallel(images)

    def _run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request = self._request_for(images.shape)
        try:
            request.infer({0: images})
        except RuntimeError as exc:  # e.g. an input below the network's minimum size
            raise AcfdError(f"OpenVINO failed on input {list(images.shape)} ({_one_line(exc)})") from None
        return _outputs(request)

    def _run_parallel(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sub-batches on all infer requests at once (one per stream): the throughput
        mode's streams only work when several requests are in flight."""
        chunks = np.array_split(images, min(self.num_requests, images.shape[0]))
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(chunks)
        errors: list[BaseException] = []
        requests = [self._request_for(chunk.shape, i) for i, chunk in enumerate(chunks)]
        for request, chunk in zip(requests, chunks):
            request.start_async({0: np.ascontiguousarray(chunk)})
        for i, request in enumerate(requests):
            try:
                request.wait()
                results[i] = _outputs(request)
            except BaseException as exc:  # wait for every request before raising
                errors.append(exc)
        if errors:
            if isinstance(errors[0], RuntimeError):
                raise AcfdError(f"OpenVINO failed on input {list(images.shape)} ({_one_line(errors[0])})") from None
            raise errors[0]
        boxes = np.concatenate([r[0] for r in results if r is not None])
        scores = np.concatenate([r[1] for r in results if r is not None])
        return boxes, scores

    def profile(self, images: np.ndarray) -> list[LayerTime]:
        """Per-layer times of one inference (needs ``profile=True``; latency mode)."""
        if not self.config.get("PERF_COUNT"):
            raise AcfdError("per-layer times need OpenVinoRunner(..., profile=True)")
        with self._lock:
            request = self._request_for(images.shape)
            request.infer({0: np.ascontiguousarray(images, dtype=np.float32)})
            info = request.get_profiling_info()
        return [
            LayerTime(p.node_name, p.node_type, p.exec_type, p.real_time.total_seconds() * 1e3)
            for p in info
            if str(p.status).endswith("EXECUTED") and not str(p.status).endswith("NOT_EXECUTED")
        ]


def _outputs(request: Any) -> tuple[np.ndarray, np.ndarray]:
    boxes = request.get_tensor("boxes").data
    scores = request.get_tensor("scores").data
    return np.array(boxes, dtype=np.float32), np.array(scores, dtype=np.float32)
