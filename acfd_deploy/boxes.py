"""Box math on torch tensors: formats, IoU, and SSD-style box coding.

Boxes are ``xyxy`` in pixels unless a name says otherwise. Coding follows SSD: centre
offsets in units of the anchor size times ``variances[0]``, log size ratios divided by
``variances[1]``.
"""

from __future__ import annotations

import math

import torch

# exp() of a log-size delta is clamped here (mmdetection's ``wh_ratio_clip``): an
# untrained or fp16 network can emit large deltas, and exp() of them is inf in the boxes.
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of ``a [N, 4]`` and ``b [M, 4]`` -> ``[N, M]`` (continuous areas)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def encode(boxes: torch.Tensor, anchors: torch.Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> torch.Tensor:
    """Regression targets for ``boxes`` (xyxy) relative to ``anchors`` (xyxy), same shape."""
    b, a = xyxy_to_cxcywh(boxes), xyxy_to_cxcywh(anchors)
    centre = (b[..., :2] - a[..., :2]) / (a[..., 2:] * variances[0])
    size = torch.log(b[..., 2:].clamp(min=1e-6) / a[..., 2:]) / variances[1]
    return torch.cat((centre, size), dim=-1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> torch.Tensor:
    """Inverse of :func:`encode`: deltas ``[..., N, 4]`` on anchors ``[N, 4]`` -> xyxy."""
    a = xyxy_to_cxcywh(anchors)
    centre = a[..., :2] + deltas[..., :2] * variances[0] * a[..., 2:]
    size = a[..., 2:] * torch.exp((deltas[..., 2:] * variances[1]).clamp(max=MAX_LOG_SCALE))
    return cxcywh_to_xyxy(torch.cat((centre, size), dim=-1))
