"""AOTInductor runner: a ``.pt2`` package acfd-export compiled from the folded graph, run
by ``torch._inductor.aoti_load_package`` on the device it was compiled for.

Everything is checked before the package's shared library is loaded (loading runs its
code): that the file is a whole AOTInductor zip with acfd metadata, that it was compiled
for this device kind, this CPU's instruction set and this torch version
(:mod:`acfd_deploy.runtime.pt2_package`). Inputs outside the ranges it was exported for
are refused with the range, before the compiled code sees them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acfd_deploy.configs import ModelConfig, resolve_config
from acfd_deploy.envinfo import cpu_flags
from acfd_deploy.errors import AcfdError
from acfd_deploy.model.anchors import num_anchors
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, cuda_device_count, parse_device
from acfd_deploy.runtime.pt2_package import check_binding, read_metadata

Outputs = tuple[torch.Tensor, torch.Tensor]


def _ranges(meta: dict[str, Any]) -> dict[str, tuple[int, int]]:
    ranges = meta.get("input", {}).get("ranges", {})
    try:
        return {k: (int(ranges[k][0]), int(ranges[k][1])) for k in ("batch", "height", "width")}
    except (KeyError, TypeError, ValueError, IndexError):
        raise AcfdError("the package's metadata has no input ranges (batch, height, width): export it again") from None


def _config(meta: dict[str, Any]) -> ModelConfig | None:
    try:
        return resolve_config(meta["config"])
    except (KeyError, AcfdError, TypeError, ValueError):
        return None


class Pt2Runner(Runner):
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])``."""

    accepts_torch = True
    path: Path  # always a file for this runner

    def __init__(self, path: str | os.PathLike[str], device: str | Device = "auto", name: str | None = None) -> None:
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        requested = parse_device(device)
        kind = check_binding(self.meta, requested.kind, torch.__version__, cpu_flags(), cuda_device_count() > 0)
        self.device = Device(kind, requested.index if kind == "cuda" else 0)
        if kind == "cuda" and self.device.index >= cuda_device_count():
            raise AcfdError(f"--device {self.device}: only {cuda_device_count()} CUDA device(s) here")
        self.ranges = _ranges(self.meta)
        self.min_size = max(self.ranges["height"][0], self.ranges["width"][0])
        self.precision = str(self.meta.get("precision", "unknown"))
        self.name = name or f"aotinductor-{self.device}"
        self._torch_device = torch.device(self.device.torch())
        self._config = _config(self.meta)
        self.model: Any = None
        try:
            self.model = torch._inductor.aoti_load_package(str(self.path), device_index=self.device.index if kind == "cuda" else -1)
        except RuntimeError as exc:  # a package torch cannot open after all: bad input, one line
            raise AcfdError(f"AOTInductor cannot load {self.path} ({' '.join(str(exc).split())[:200]})") from None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """An :class:`AcfdError` naming the range when ``shape`` is outside what the package was exported for."""
        if len(shape) != 4 or shape[1] != 3:
            raise AcfdError(f"images must be [B,3,H,W], got shape {list(shape)}")
        for axis, value in zip(("batch", "height", "width"), (shape[0], shape[2], shape[3])):
            lo, hi = self.ranges[axis]
            if not lo <= value <= hi:
                raise AcfdError(
                    f"images {list(shape)}: {axis} {value} is outside the range {lo}..{hi} {self.path.name} was exported for "
                    "(export again with a larger --batch, or resize the input)"
                )

    @torch.inference_mode()
    def infer_torch(self, images: torch.Tensor) -> Outputs:
        self.check_shape(tuple(images.shape))
        x = images.to(self._torch_device, torch.float32, non_blocking=True).contiguous()
        boxes, scores = self.model(x)
        self._check_outputs(tuple(images.shape), boxes, scores)
        return boxes.float(), scores.float()

    def _check_outputs(self, shape: tuple[int, ...], boxes: torch.Tensor, scores: torch.Tensor) -> None:
        """Compiled dynamic-shape code can get a size formula wrong for sizes it was not
        traced at (docs/export.md): the anchor count is pure arithmetic, so check it."""
        if self._config is None:
            return
        expected = num_anchors(shape[2], shape[3], self._config)
        if tuple(boxes.shape) != (shape[0], expected, 4) or tuple(scores.shape) != (shape[0], expected):
            raise AcfdError(
                f"{self.path.name} returned boxes {list(boxes.shape)} and scores {list(scores.shape)} for input {list(shape)}, "
                f"expected {expected} anchors: the compiled package is wrong at this size; export it again"
            )

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.infer_torch(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        return boxes.cpu().numpy(), scores.cpu().numpy()

    def close(self) -> None:
        self.model = None
