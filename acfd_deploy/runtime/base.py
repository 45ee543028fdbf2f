"""The runner interface, after Polygraphy's: construct, then ``infer`` many times."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Runner(Protocol):
    """Runs one artifact.

    ``infer`` takes float32 RGB images ``[B, 3, H, W]`` with values 0..255 (the input
    contract of every artifact) and returns ``boxes [B, N, 4]`` (xyxy, input pixels) and
    ``scores [B, N]`` (0..1) as float32 numpy arrays. ``name`` says what runs (for tables),
    ``precision`` is ``fp32``, ``fp16`` or ``int8``.
    """

    name: str
    precision: str

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
