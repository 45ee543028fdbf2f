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
    inter, union = _inter_union(boxes)
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))


def _inter_union(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # per coordinate, in place where possible: [B, K, K, 2] temporaries cost twice the time
    x1, y1, x2, y2 = boxes.unbind(-1)
    iw = torch.minimum(x2[:, :, None], x2[:, None, :]).sub_(torch.maximum(x1[:, :, None], x1[:, None, :])).clamp_(min=0)
    ih = torch.minimum(y2[:, :, None], y2[:, None, :]).sub_(torch.maximum(y1[:, :, None], y1[:, None, :])).clamp_(min=0)
    inter = iw.mul_(ih)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = (area[:, :, None] + area[:, None, :]).sub_(inter)
    return inter, union


def _nms_sorted(boxes: torch.Tensor, valid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Keep mask for boxes already in descending score order, ``[B, K]``."""
    k = boxes.shape[1]
    inter, union = _inter_union(boxes)
    over = inter > union.mul_(iou_threshold)  # IoU > t without dividing; an empty union never suppresses
    idx = torch.arange(k, device=boxes.device)
    over &= idx[:, None] < idx[None, :]  # only a higher-ranked box (i < j) suppresses
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
    max_keep: int | None = None,
) -> ArrayT:
    """Keep mask ``[B, K]`` (in the input order) of greedy NMS run per image.

    ``boxes [B, K, 4]``, ``scores [B, K]``; ``valid [B, K]`` marks real entries (padding
    or below-threshold entries are never kept and never suppress). Ties in score keep
    the input order.

    ``max_keep``: only the best ``max_keep`` survivors per image are wanted (the paper
    keeps 100). Greedy NMS decides each box from higher-ranked boxes alone, so running
    it on a score-ordered prefix is exact for that prefix; the prefix doubles (from 256)
    until every image has ``max_keep`` survivors in it or it is the whole set. That turns
    the usual 3,000 x 3,000 overlap matrix of the multi-scale test into a few hundred
    squared. With it, survivors beyond the first ``max_keep`` may be missing from the
    mask; without it the mask is complete.
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
        prefix = n_valid if max_keep is None else min(n_valid, max(256, 2 * max_keep))
        while True:
            kept_sorted = _nms_prefix(sorted_boxes[:, :prefix], sorted_valid[:, :prefix], iou_threshold)
            if prefix == n_valid or (max_keep is not None and bool((kept_sorted.sum(dim=1) >= max_keep).all())):
                break
            prefix = min(n_valid, 2 * prefix)
        keep.scatter_(1, order[:, :prefix], kept_sorted)
    return keep.numpy() if is_numpy else keep  # type: ignore[return-value]


def _nms_prefix(boxes: torch.Tensor, valid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """:func:`_nms_sorted` in chunks of images, so the ``[B, K, K]`` matrices stay bounded."""
    bsz, k = valid.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, k * k))
    return torch.cat([_nms_sorted(boxes[i : i + step], valid[i : i + step], iou_threshold) for i in range(0, bsz, step)], dim=0)
