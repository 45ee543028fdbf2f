"""Runners for end-to-end graphs (image in, faces out: ``outputs == "detections"``), for
ONNX Runtime and OpenVINO, and the registry factories that tell such a file from a raw
network by its metadata (``graph: end2end``, written by acfd-export --end2end), never by
its name.

The graph's input is what a decoder gives: uint8 RGB ``[B, H, W, 3]``, one size per call.
Anything else is refused here with one line, before the runtime sees it: a runtime fed a
wrong dtype or a zero-sized tensor reports it with a page of its own internals.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError, one_line
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner, onnx_metadata

GRAPH_KEY = "graph"
GRAPH_END2END = "end2end"
INPUT_NAME = "images"
OUTPUT_NAMES = ("num_dets", "det_boxes", "det_scores")


@dataclass(frozen=True)
class EndToEndInfo:
    """What an end-to-end file was built with (its metadata): the test scales (H, W),
    the resize policy, the post-processing (``PostprocessConfig`` fields) and the
    smallest network side."""

    scales: tuple[tuple[int, int], ...]
    keep_ratio: bool
    post: dict[str, Any] = field(default_factory=dict)
    min_side: int = 125
    network_file: str = ""  # the raw ONNX file the graph wraps (its name beside the graph)
    network_sha256: str = ""

    @property
    def max_det(self) -> int:
        return int(self.post.get("max_det", 100))


def is_end2end(metadata: dict[str, str]) -> bool:
    return metadata.get(GRAPH_KEY) == GRAPH_END2END


def parse_end2end(metadata: dict[str, str], where: str = "the file") -> EndToEndInfo:
    try:
        scales = tuple((int(h), int(w)) for h, w in json.loads(metadata["scales"]))
        keep_ratio = bool(json.loads(metadata.get("keep_ratio", "false")))
        post = dict(json.loads(metadata["post"]))
        min_side = int(json.loads(metadata.get("input", "{}")).get("min_side", 125))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise AcfdError(f"{where} says it is an end-to-end graph, but its metadata is incomplete or malformed ({exc})") from None
    if not scales:
        raise AcfdError(f"{where} says it is an end-to-end graph, but records no test scale")
    return EndToEndInfo(scales, keep_ratio, post, min_side, metadata.get("network_file", ""), metadata.get("network_sha256", ""))


def check_images(images: Any) -> np.ndarray:
    """The contiguous uint8 ``[B, H, W, 3]`` array, or a one-line AcfdError saying what is wrong."""
    if not isinstance(images, np.ndarray):
        raise AcfdError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise AcfdError(f"images must be uint8 (decoded pixels), got {images.dtype}")
    if images.ndim != 4:
        raise AcfdError(f"images must be [B, H, W, 3] (batch, height, width, RGB), got {images.ndim} dimensions {list(images.shape)}")
    if images.shape[3] != 3:
        raise AcfdError(f"images must have 3 channels (RGB) last, got shape {list(images.shape)}")
    if min(images.shape[:3]) < 1:
        raise AcfdError(f"images must not be empty, got shape {list(images.shape)}")
    return np.ascontiguousarray(images)


class OnnxEndToEndRunner(OnnxRuntimeRunner):
    """``infer_detections(uint8 [B,H,W,3]) -> (num_dets [B,1], det_boxes [B,K,4], det_scores [B,K])``
    with ONNX Runtime."""

    outputs = "detections"

    def __init__(self, path: str | os.PathLike[str], info: EndToEndInfo | None = None, **options: Any) -> None:
        super().__init__(path, **options)
        self.end2end = info or parse_end2end(onnx_metadata(self.path), str(self.path))
        self.min_size = 1  # the graph resizes and pads itself
        self.name = f"{self.name}-e2e"

    def _check_io(self, inputs: list[str], outputs: list[str]) -> None:
        if len(inputs) != 1 or not set(OUTPUT_NAMES) <= set(outputs):
            raise AcfdError(
                f"{self.path} is not an ACFD end-to-end model: expected one input and outputs {', '.join(OUTPUT_NAMES)}, "
                f"found inputs {inputs} and outputs {outputs}"
            )

    def infer_detections(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = check_images(images)
        try:
            num, boxes, scores = self.session.run(list(OUTPUT_NAMES), {self.input_name: images})
        except Exception as exc:  # the runtime's own failure on this input: one line, not its internals
            raise AcfdError(f"ONNX Runtime failed on input {list(images.shape)} ({one_line(exc, 160)})") from None
        return num.astype(np.int32, copy=False), boxes.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return Runner.infer(self, images)


def _openvino_class() -> type:
    from acfd_deploy.runtime.openvino_runner import OpenVinoRunner

    class OpenVinoEndToEndRunner(OpenVinoRunner):
        """``infer_detections`` with OpenVINO on the CPU (the raw runner's precision pinning)."""

        outputs = "detections"

        def __init__(self, path: str | os.PathLike[str], info: EndToEndInfo, **options: Any) -> None:
            options.pop("static_shapes", None)  # one graph for every image size
            super().__init__(path, **options)
            self.end2end = info
            self.min_size = 1
            self.name = f"{self.name}-e2e"

        @staticmethod
        def _check_io(model: Any) -> None:
            inputs = [i.get_any_name() for i in model.inputs]
            outputs = sorted(o.get_any_name() for o in model.outputs)
            if len(inputs) != 1 or outputs != sorted(OUTPUT_NAMES):
                raise AcfdError(f"not an acfd end-to-end model: inputs {inputs}, outputs {outputs}")

        def infer_detections(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            images = check_images(images)
            with self._lock:
                request = self._requests[0]
                try:
                    request.infer({0: images})
                except RuntimeError as exc:
                    raise AcfdError(f"OpenVINO failed on input {list(images.shape)} ({one_line(exc, 200)})") from None
                return tuple(np.array(request.get_tensor(n).data) for n in OUTPUT_NAMES)  # type: ignore[return-value]

        def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return Runner.infer(self, images)

    return OpenVinoEndToEndRunner


def _metadata(path: Path) -> dict[str, str]:
    """The acfd metadata of an ONNX file or an IR; empty where it cannot be read (the
    runner that loads it then reports why)."""
    try:
        if path.suffix.lower() == ".xml":
            from acfd_deploy.runtime.openvino_model import read_ir_metadata

            return read_ir_metadata(path)
        return onnx_metadata(path)
    except Exception:
        return {}


def onnxruntime_runner(path: str | os.PathLike[str], **options: Any) -> Runner:
    """The registry's ONNX Runtime factory: an end-to-end file gets :class:`OnnxEndToEndRunner`."""
    meta = _metadata(Path(path))
    if is_end2end(meta):
        return OnnxEndToEndRunner(path, parse_end2end(meta, str(path)), **options)
    return OnnxRuntimeRunner(path, **options)


def openvino_runner(path: str | os.PathLike[str], **options: Any) -> Runner:
    """The registry's OpenVINO factory (``.xml`` or ``.onnx``), end-to-end files included."""
    from acfd_deploy.runtime.openvino_runner import OpenVinoRunner

    meta = _metadata(Path(path))
    if is_end2end(meta):
        return _openvino_class()(path, parse_end2end(meta, str(path)), **options)
    return OpenVinoRunner(path, **options)
