"""Anchors: one square per feature-map location, side ``anchor_scale * stride``.

They are generated from the head's *actual* feature shapes inside the forward pass (so an
exported graph computes them for whatever size it is given) and, separately, from pure
size arithmetic, which the model card, the tests and the pipeline use without running the
network.
"""

from __future__ import annotations

import math

import torch

from acfd_deploy.configs import ModelConfig


def level_anchors(
    height: int | torch.Tensor, width: int | torch.Tensor, stride: int, scale: float, device: torch.device | None = None
) -> torch.Tensor:
    """``[H * W, 4]`` xyxy anchors of one level, row-major like the head's outputs."""
    # height and width are 0-d tensors while tracing for ONNX, so the export keeps them dynamic
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride  # type: ignore[arg-type]
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride  # type: ignore[arg-type]
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    half = scale * stride / 2
    return torch.stack((cx - half, cy - half, cx + half, cy + half), dim=-1).reshape(-1, 4)


def anchors_for_features(features: list[torch.Tensor], strides: tuple[int, ...], scale: float) -> torch.Tensor:
    """``[N, 4]`` anchors for feature maps ``[B, C, H_l, W_l]``, levels concatenated."""
    return torch.cat(
        [level_anchors(f.shape[-2], f.shape[-1], s, scale, f.device) for f, s in zip(features, strides)],
        dim=0,
    )


def _conv_out(n: int, stride: int) -> int:
    return (n - 1) // stride + 1  # 3x3, pad 1


def _pool_out(n: int) -> int:
    # MaxPool(3, 2, ceil_mode=True): ceil((n - 3) / 2) + 1 == n // 2 for n >= 2
    return math.ceil((n - 3) / 2) + 1 if n >= 2 else 0


def feature_sizes(height: int, width: int, config: ModelConfig) -> list[tuple[int, int]]:
    """The ``(H, W)`` of every pyramid level for an input of ``height x width``."""
    h, w = _conv_out(_conv_out(height, 2), 2), _conv_out(_conv_out(width, 2), 2)
    sizes = [(h, w)]
    for _ in range(config.num_levels - 1):
        h, w = _pool_out(h), _pool_out(w)
        sizes.append((h, w))
    return sizes


def num_anchors(height: int, width: int, config: ModelConfig) -> int:
    return sum(h * w for h, w in feature_sizes(height, width, config))


def min_input_size(config: ModelConfig) -> int:
    """The smallest side for which every level has at least one location.

    Each max-pool halves (rounding down), so the coarsest level needs the stride-4 level
    to be at least ``2 ** (L - 1)``: 125 pixels for six levels.
    """
    n = 1
    while min(min(s) for s in feature_sizes(n, n, config)) < 1:
        n += 1
    return n
