"""Margin binary classification loss (the paper's Eq. 2 and 3).

Eq. 2 splits both losses by how an anchor was matched: the matched anchors (psi_1) are
normalized by their count N1 and the compensated ones (psi_2, from DAM's second step) by
theirs, N2, and weighted by lambda (0.7), so that many far-away compensated anchors cannot
dominate. Classification sums over every anchor not in psi_2 (matched and negatives) in
the first term. Counts are taken over the whole batch; N1 is clamped to at least 1 and N2
to at least N1 (see ``mbc_loss``: without that floor a handful of compensated anchors
outweigh hundreds of matched ones and training diverges).

Eq. 3 subtracts a margin m = 0.2 from the positive class's prediction before the loss,
so a face must be scored past the decision boundary by m to stop being penalized.

**Where the margin goes.** The paper calls p_i "the output of the network". We apply m to
the raw output, the logit, before the sigmoid: ``z_m = z - m`` for positives. Applied to
the probability instead, ``log(p - m)`` is undefined for every positive with p < m, which
is every positive at the start (the focal-loss prior makes p = 0.01): clamping would give
those anchors no gradient and the detector would never learn faces. Subtracting before
the normalizing function is also how CosFace and ArcFace, which the paper cites, apply
their margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from acfd_deploy.boxes import decode, encode
from acfd_deploy.train.dam import COMPENSATED, MATCHED, dynamic_anchor_match


@dataclass(frozen=True)
class LossConfig:
    t1: float = 0.35
    t2: float = 0.7
    lambda_reg: float = 0.7
    lambda_cls: float = 0.7
    margin: float = 0.2
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 1.0 / 9.0
    variances: tuple[float, float] = (0.1, 0.2)


def focal_loss_with_margin(logits: torch.Tensor, targets: torch.Tensor, margin: float, alpha: float, gamma: float) -> torch.Tensor:
    """Elementwise sigmoid focal loss, with ``margin`` subtracted from positive logits."""
    targets = targets.to(logits.dtype)
    z = logits - margin * targets
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * ce


@dataclass
class LossParts:
    total: torch.Tensor
    cls: torch.Tensor
    reg: torch.Tensor
    matched: int
    compensated: int


def mbc_loss(
    logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, gt_boxes: list[torch.Tensor], config: LossConfig | None = None
) -> LossParts:
    """``logits [B, N]``, ``deltas [B, N, 4]``, ``anchors [N, 4]`` (the model's TrainOutput)
    and one ``[M_b, 4]`` xyxy tensor of faces per image (``M_b`` may be 0)."""
    cfg = config or LossConfig()
    logits, deltas = logits.float(), deltas.float()
    labels_list, targets_list = [], []
    with torch.no_grad():
        regressed = decode(deltas.detach(), anchors, cfg.variances)
        for b, gt in enumerate(gt_boxes):
            assigned, labels = dynamic_anchor_match(anchors, regressed[b], gt.to(anchors.device), cfg.t1, cfg.t2)
            labels_list.append(labels)
            targets_list.append(assigned)
    labels = torch.stack(labels_list)
    assigned = torch.stack(targets_list)
    matched, compensated = labels == MATCHED, labels == COMPENSATED
    n1 = max(int(matched.sum()), 1)
    # Eq. 2 divides the compensated terms by N2 so that many compensated anchors cannot
    # dominate. Read literally, a *few* of them dominate instead: one compensated anchor
    # gets weight lambda / 1 against 1 / N1 (~1/260) for each matched one, and training
    # diverged once DAM began to compensate (loss 6.6 -> 7.8 over iterations 200-450 on
    # synthetic faces, while the same run with plain matching fell to 3.6). So N2 is
    # floored at N1: a compensated anchor never weighs more than lambda times a matched one.
    n2 = max(int(compensated.sum()), n1)

    focal = focal_loss_with_margin(logits, (labels > 0).to(logits.dtype), cfg.margin, cfg.focal_alpha, cfg.focal_gamma)
    cls = focal[~compensated].sum() / n1 + cfg.lambda_cls * focal[compensated].sum() / n2

    positive = labels > 0
    if positive.any():
        target_deltas = encode(assigned[positive], anchors.expand_as(assigned)[positive], cfg.variances)
        sl1 = F.smooth_l1_loss(deltas[positive], target_deltas, beta=cfg.smooth_l1_beta, reduction="none").sum(dim=-1)
        is_comp = compensated[positive]
        reg = sl1[~is_comp].sum() / n1 + cfg.lambda_reg * sl1[is_comp].sum() / n2
    else:
        reg = deltas.sum() * 0.0  # keeps the graph connected for DDP
    return LossParts(cls + reg, cls.detach(), reg.detach(), int(matched.sum()), int(compensated.sum()))
