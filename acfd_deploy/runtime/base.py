"""The runner interface, after Polygraphy's: construct, then ``infer`` many times."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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


def runner_min_size(runner: Any, default: int) -> int:
    """The smallest input side ``runner`` takes: its PyTorch network's ``min_size`` (a
    PyTorch runner), else the runner's own (a Triton runner reads it from the server's
    config), else ``default``."""
    model = getattr(runner, "model", None)
    if model is not None:
        import torch  # already imported wherever a PyTorch network exists

        if not isinstance(model, torch.nn.Module):
            model = None  # e.g. a Triton runner's model *name*
    return int(getattr(model, "min_size", getattr(runner, "min_size", default)))


def close_runner(runner: Any) -> None:
    """Release what ``runner`` holds (a TensorRT context, a gRPC channel), if it has a
    ``close``; runners without one need nothing."""
    close = getattr(runner, "close", None)
    if callable(close):
        close()
