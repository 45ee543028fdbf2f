"""Exact greedy NMS, vectorized and batched, for torch tensors and numpy arrays alike.

Greedy NMS keeps box ``j`` (in descending score order) unless a kept box ``i < j``
overlaps it above the threshold. That recurrence is strictly triangular, so it has
exactly one solution, and iterating ``keep <- valid & ~any_i(keep[i] & over[i, j])`` from
``keep = valid`` reaches it: after ``t`` rounds the first ``t`` entries are final, and in
practice the rounds needed are the length of the longest suppression chain (a handful),
not ``K``. Each round is one batched boolean matrix product, so there is no Python loop
over boxes. numpy inputs run through the same torch code (zero-copy) and come back as
numpy, so there is one implementation to test.

IoU here uses continuous areas (the network's boxes are continuous coordinates); the
challenge's +1 rule belongs to the metric (:mod:`acfd_deploy.eval`), not to NMS.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

# B * K * K elements per chunk of the IoU matrix (float32: 64 MB)
_CHUNK_ELEMENTS = 1 << 24


def to_torch(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def batched_box_iou(boxes: torch.Tensor) -> torch.Tensor:
    """``[B, K, 4]`` xyxy -> ``[B, K, K]`` IoU (continuous areas; 0 for empty unions)."""
    lt = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    rb = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    union = area[:, :, None] + area[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))


def _nms_sorted(boxes: torch.Tensor, valid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Keep mask for boxes already in descending score order, ``[B, K]``."""
    k = boxes.shape[1]
    over = batched_box_iou(boxes) > iou_threshold
    over &= torch.ones(k, k, dtype=torch.bool, device=boxes.device).triu(diagonal=1)  # only i < j suppresses
    overf = over.to(torch.float32)
    keep = valid.clone()
    for _ in range(k + 1):
        suppressed = torch.bmm(keep.to(torch.float32)[:, None, :], overf)[:, 0] > 0
        new = valid & ~suppressed
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def batched_nms(
    boxes: ArrayT,
    scores: ArrayT,
    iou_threshold: float,
    valid: ArrayT | None = None,
) -> ArrayT:
    """Keep mask ``[B, K]`` (in the input order) of greedy NMS run per image.

    ``boxes [B, K, 4]``, ``scores [B, K]``; ``valid [B, K]`` marks real entries (padding
    or below-threshold entries are never kept and never suppress). Ties in score keep
    the input order.
    """
    is_numpy = isinstance(boxes, np.ndarray)
    b_t, s_t = to_torch(boxes).float(), to_torch(scores).float()
    v_t = torch.ones_like(s_t, dtype=torch.bool) if valid is None else to_torch(valid).bool()
    keep = torch.zeros_like(v_t)
    bsz, k = s_t.shape
    if k > 0 and bsz > 0:
        key = torch.where(v_t, s_t, torch.full_like(s_t, -torch.inf))
        order = torch.sort(key, dim=1, descending=True, stable=True).indices
        n_valid = int(v_t.sum(dim=1).max())  # invalid entries sort last: drop them
        order = order[:, :n_valid]
        sorted_boxes = torch.gather(b_t, 1, order[..., None].expand(-1, -1, 4))
        sorted_valid = torch.gather(v_t, 1, order)
        step = max(1, _CHUNK_ELEMENTS // max(1, n_valid * n_valid))
        for start in range(0, bsz, step):
            sl = slice(start, start + step)
            kept_sorted = _nms_sorted(sorted_boxes[sl], sorted_valid[sl], iou_threshold)
            keep[sl].scatter_(1, order[sl], kept_sorted)
    return keep.numpy() if is_numpy else keep  # type: ignore[return-value]
