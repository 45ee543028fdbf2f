"""Dynamic anchor match (the paper's Algorithm 1), vectorized over anchors.

Step one is the classic rule: an anchor whose IoU with some face reaches ``t1`` is matched
to the face it overlaps most (label 1). Step two looks at the anchors step one left: if
the box the network *regressed* from such an anchor reaches IoU ``t2`` with some face, the
anchor is compensated (label 2) and assigned that face, because an anchor that already
regresses well is a good training sample even when its own overlap is small.
"""

from __future__ import annotations

import torch

from acfd_deploy.boxes import box_iou

NEGATIVE, MATCHED, COMPENSATED = 0, 1, 2


@torch.no_grad()
def dynamic_anchor_match(
    anchors: torch.Tensor, regressed: torch.Tensor, gt: torch.Tensor, t1: float = 0.35, t2: float = 0.7
) -> tuple[torch.Tensor, torch.Tensor]:
    """``anchors [N, 4]``, ``regressed [N, 4]`` (decoded predictions), ``gt [M, 4]``, all
    xyxy -> ``assigned [N, 4]`` (the face each anchor learns; zeros for negatives) and
    ``labels [N]`` (int64: 0 negative, 1 matched, 2 compensated). ``M = 0`` is allowed."""
    n = anchors.shape[0]
    labels = torch.zeros(n, dtype=torch.long, device=anchors.device)
    assigned = torch.zeros(n, 4, dtype=anchors.dtype, device=anchors.device)
    if gt.numel() == 0:
        return assigned, labels
    gt = gt.to(anchors.dtype)
    anchor_max, anchor_idx = box_iou(anchors, gt).max(dim=1)
    first = anchor_max >= t1
    box_max, box_idx = box_iou(regressed.to(anchors.dtype), gt).max(dim=1)
    second = ~first & (box_max >= t2)
    labels[first] = MATCHED
    labels[second] = COMPENSATED
    assigned[first] = gt[anchor_idx[first]]
    assigned[second] = gt[box_idx[second]]
    return assigned, labels
