"""The runner contract, after Polygraphy's ``BaseRunner``: construct, ``infer`` many times,
``close`` (or use it as a context manager).

Every artifact (checkpoint, ONNX file, TensorRT plan, OpenVINO IR, AOTInductor package, a
model on a Triton server) is run through a subclass of :class:`Runner`, and everything a
consumer needs to drive one is an attribute of the contract: what runs (``name``), at
which ``precision``, where (``device``), the smallest input side it takes (``min_size``),
what its graph does before and after the network (``outputs``), and whether it takes
device tensors directly (``accepts_torch``). Detect, eval, bench, serve and export read
these attributes; none of them probes a runner with ``getattr`` or guesses from its name.

Two kinds of graph, told apart by ``outputs``:

* ``"anchors"`` (the raw network): ``infer(images)`` takes float32 RGB ``[B, 3, H, W]``,
  values 0..255, and returns ``boxes [B, N, 4]`` (xyxy, input pixels) and ``scores [B, N]``
  (0..1) for every anchor, as float32 numpy arrays; the pipeline does resizing, the test
  scales, top-k, NMS.
* ``"detections"`` (an end-to-end graph): ``infer_detections(images)`` takes uint8 RGB
  ``[B, H, W, 3]`` as decoded and returns ``num_dets int32 [B, 1]``, ``det_boxes float32
  [B, K, 4]`` (xyxy, the input image's pixels) and ``det_scores float32 [B, K]``, rows past
  ``num_dets`` zero; preprocessing, the test scales, decode and NMS are inside the graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from acfd_deploy.runtime.device import Device

if TYPE_CHECKING:  # torch is imported only by the runners that use it
    import torch

    from acfd_deploy.runtime.end2end import EndToEndInfo

# The smallest input side of an ACFD network with six pyramid levels (a config with other
# levels says its own through ``acfd_deploy.model.anchors.min_input_size``). The runtime
# layer sits below the pipeline, which shares this value as DEFAULT_MIN_SIZE.
DEFAULT_MIN_SIZE = 125
# The pixel mean every config shares; the network subtracts it inside the graph, and the
# pipeline pads with it (the value that normalizes to zero).
DEFAULT_PIXEL_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)

Outputs = Literal["anchors", "detections"]


class Runner:
    """One artifact, ready to run. Subclasses set the attributes in ``__init__`` and
    implement :meth:`infer` (``outputs == "anchors"``) or :meth:`infer_detections`
    (``outputs == "detections"``).

    Attributes:
        name: what runs, for tables and logs (``onnxruntime-cpu``, ``torch-cuda:0``, ...).
        precision: ``fp32``, ``fp16``, ``bf16``, ``int8`` or ``unknown`` (a remote model
            whose config does not say).
        device: where the network runs, resolved (``cpu`` or ``cuda:N``, never ``auto``);
            a remote runner reports the client's side.
        min_size: the smallest input side the network takes; the pipeline pads up to it.
        pixel_mean: the mean the graph subtracts (the pipeline pads with it).
        outputs: ``"anchors"`` (raw network) or ``"detections"`` (end-to-end graph).
        accepts_torch: :meth:`infer_torch` takes torch tensors on ``device`` without host
            copies (PyTorch-backed runners); the others take numpy through :meth:`infer`.
        backend: the registry backend's name, where the registry made the runner.
        path: the artifact's file, where there is one (not for a server or an in-memory
            model).
        end2end: what an end-to-end graph was built with (its test scales, resize policy,
            post-processing, the raw network it wraps); None for a raw network, whose scales
            are the pipeline's choice.
    """

    name: str = "runner"
    precision: str = "unknown"
    device: Device = Device("cpu")
    min_size: int = DEFAULT_MIN_SIZE
    pixel_mean: tuple[float, float, float] = DEFAULT_PIXEL_MEAN
    outputs: ClassVar[Outputs] = "anchors"
    accepts_torch: ClassVar[bool] = False
    backend: str = ""
    path: Path | None = None
    end2end: EndToEndInfo | None = None

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``images float32 [B, 3, H, W]`` 0..255 -> ``(boxes [B, N, 4], scores [B, N])``."""
        raise NotImplementedError(f"{type(self).__name__} is an end-to-end runner: call infer_detections")

    def infer_torch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`infer` on torch tensors, outputs left on ``device`` (``accepts_torch``)."""
        raise NotImplementedError(f"{type(self).__name__} does not take torch tensors (accepts_torch is False)")

    def infer_detections(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``images uint8 [B, H, W, 3]`` RGB -> ``(num_dets [B, 1], det_boxes [B, K, 4], det_scores [B, K])``."""
        raise NotImplementedError(f"{type(self).__name__} runs the raw network: call infer")

    def close(self) -> None:
        """Release what the runner holds (a TensorRT context, a gRPC channel, a session).
        Safe to call more than once, and on a runner whose ``__init__`` failed half way."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.precision} on {self.device}>"


def contract_from_metadata(metadata: Mapping[str, str]) -> tuple[int, tuple[float, float, float]]:
    """``(min_size, pixel_mean)`` from the metadata acfd-export writes into every ONNX file
    and OpenVINO IR (``input`` JSON with ``min_side``, ``config`` JSON with
    ``pixel_mean``); the defaults for what a file does not say (a foreign or older file)."""
    min_size, pixel_mean = DEFAULT_MIN_SIZE, DEFAULT_PIXEL_MEAN
    try:
        side = json.loads(metadata.get("input") or "{}").get("min_side")
        if isinstance(side, int) and side >= 1:
            min_size = side
    except (ValueError, AttributeError):
        pass
    try:
        mean = json.loads(metadata.get("config") or "{}").get("pixel_mean")
        if isinstance(mean, list) and len(mean) == 3 and all(isinstance(v, (int, float)) for v in mean):
            pixel_mean = (float(mean[0]), float(mean[1]), float(mean[2]))
    except (ValueError, AttributeError):
        pass
    return min_size, pixel_mean
