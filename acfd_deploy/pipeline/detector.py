"""Runner + preprocessing + post-processing: images in, faces out, for any artifact.

The same :class:`Detector` drives a PyTorch model, an ONNX Runtime session, a TensorRT
engine, an OpenVINO model or a model on a Triton server (anything with the
:class:`~acfd_deploy.runtime.base.Runner` interface), so the
pipeline that serves an artifact is also the one that measures it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.io import DEFAULT_MAX_PIXELS, ImageLoadError, iter_loaded
from acfd_deploy.pipeline.postprocess import PostprocessConfig, postprocess
from acfd_deploy.pipeline.preprocess import plan_arrays, preprocess_batch
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.registry import load_runner

# The paper's multi-scale test, (H, W)
MS_TEST_SCALES: tuple[tuple[int, int], ...] = ((480, 645), (640, 860), (800, 1075))
# Single-scale default: the paper's middle test scale
DEFAULT_SCALE: tuple[int, int] = (640, 860)


@dataclass(frozen=True)
class DetectorConfig:
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,)
    keep_ratio: bool = False
    post: PostprocessConfig = field(default_factory=PostprocessConfig)
    batch_size: int = 4
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not self.scales:
            raise AcfdError("at least one test scale is needed")
        for h, w in self.scales:
            if h < 1 or w < 1:
                raise AcfdError(f"a test scale must be positive, got {h}x{w}")
        if self.batch_size < 1:
            raise AcfdError(f"batch size must be positive, got {self.batch_size}")


@dataclass
class Detections:
    """One image's faces, best first: ``boxes float32 [K, 4]`` xyxy image pixels, ``scores [K]``."""

    boxes: np.ndarray
    scores: np.ndarray
    height: int
    width: int

    def __len__(self) -> int:
        return len(self.scores)


class Detector:
    """``Detector(runner, config)``; ``pixel_mean`` and ``min_size`` default to the
    runner's (the runner contract: from its model, file metadata or server config)."""

    def __init__(
        self,
        runner: Runner,
        config: DetectorConfig | None = None,
        pixel_mean: tuple[float, float, float] | None = None,
        min_size: int | None = None,
    ) -> None:
        self.runner = runner
        self.config = config or DetectorConfig()
        self.pixel_mean = pixel_mean or runner.pixel_mean
        self.min_size = min_size or runner.min_size

    def _infer(self, batch: np.ndarray) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]:
        # a PyTorch runner keeps outputs on its device, so post-processing runs there too
        if self.runner.accepts_torch:
            return self.runner.infer_torch(torch.from_numpy(batch))
        return self.runner.infer(batch)

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """``uint8 [H_i, W_i, 3]`` RGB images of any sizes -> one :class:`Detections` each."""
        if self.runner.outputs == "detections":
            return detect_end_to_end(self.runner, images, self.config.batch_size)
        out: list[Detections] = []
        bs = self.config.batch_size
        for start in range(0, len(images), bs):
            chunk = images[start : start + bs]
            per_scale = []
            orig_hw = None
            for size in self.config.scales:
                batch, plans = preprocess_batch(chunk, size, self.config.keep_ratio, self.pixel_mean, self.min_size)
                scale_xy, orig_hw = plan_arrays(plans)
                boxes, scores = self._infer(batch)
                per_scale.append((boxes, scores, scale_xy))
            results = postprocess(per_scale, orig_hw, self.config.post)  # type: ignore[arg-type]
            out.extend(Detections(b, s, img.shape[0], img.shape[1]) for (b, s), img in zip(results, chunk))
        return out

    def detect_paths(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, Detections | ImageLoadError]]:
        """``(path, detections)`` per file in order, or ``(path, error)`` for a file that
        cannot be read; the other files go on. Loads one batch at a time."""
        pending: list[tuple[Path, np.ndarray]] = []
        for path, loaded in iter_loaded((Path(p) for p in paths), self.config.max_pixels):
            if isinstance(loaded, ImageLoadError):
                yield from self._flush(pending)
                pending = []
                yield path, loaded
                continue
            pending.append((path, loaded))
            if len(pending) == self.config.batch_size:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    @classmethod
    def from_model(
        cls, model: str | os.PathLike[str], config: DetectorConfig | None = None, device: str = "auto", **options: Any
    ) -> Detector:
        """A detector over any model reference the runner registry knows (a checkpoint,
        an ONNX file, an engine, a ``triton://`` URL, ...), with the backend's defaults
        for the config's batch size (:func:`~acfd_deploy.runtime.registry.load_runner`)."""
        config = config or DetectorConfig()
        return cls(load_runner(model, device=device, batch=config.batch_size, **options), config)

    def _flush(self, pending: list[tuple[Path, np.ndarray]]) -> Iterator[tuple[Path, Detections]]:
        if pending:
            dets = self.detect([img for _, img in pending])
            yield from ((p, d) for (p, _), d in zip(pending, dets))


def detect_end_to_end(runner: Runner, images: list[np.ndarray], batch_size: int) -> list[Detections]:
    """An end-to-end runner's detections: images grouped by size (one graph call takes
    one ``H x W``), in batches of at most ``batch_size``; the graph does the rest, at the
    scales and with the post-processing it was exported with (the config's are not used)."""
    out: list[Detections | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(np.shape(img)), []).append(i)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            num, boxes, scores = runner.infer_detections(np.stack([images[i] for i in chunk]))
            for row, i in enumerate(chunk):
                n = int(num[row, 0])
                h, w = images[i].shape[:2]
                out[i] = Detections(boxes[row, :n].astype(np.float32), scores[row, :n].astype(np.float32), h, w)
    return [d for d in out if d is not None]
