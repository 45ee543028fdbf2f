"""DAM against a direct transcription of Algorithm 1, and the parts of the MBC loss."""

from __future__ import annotations

import torch

from acfd_deploy.boxes import encode
from acfd_deploy.train.dam import COMPENSATED, MATCHED, NEGATIVE, dynamic_anchor_match
from acfd_deploy.train.loss import LossConfig, focal_loss_with_margin, mbc_loss


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def algorithm_1(A, B, T1, T2, G):  # noqa: N803  (the paper's names)
    """Algorithm 1 of the paper, line by line, in plain Python."""
    R, L = [[0.0] * 4 for _ in A], [0] * len(A)
    for i, (a_i, b_i) in enumerate(zip(A, B)):
        anchor_iou = [_iou(a_i, g) for g in G]
        gt_idx, anchor_max = max(enumerate(anchor_iou), key=lambda t: t[1])
        if anchor_max >= T1:
            R[i], L[i] = G[gt_idx], 1
        else:
            bbox_iou = [_iou(b_i, g) for g in G]
            gt_idx, bbox_max = max(enumerate(bbox_iou), key=lambda t: t[1])
            if bbox_max >= T2:
                R[i], L[i] = G[gt_idx], 2
            else:
                L[i] = 0
    return R, L


def _random_boxes(n: int, gen: torch.Generator, scale: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * scale / 2 + 2
    return torch.cat((xy, xy + wh), dim=1)


def test_dam_matches_algorithm_1_on_random_boxes() -> None:
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        gt = _random_boxes(4 + trial, gen)
        anchors = torch.cat((_random_boxes(300, gen), gt + torch.randn(gt.shape, generator=gen, dtype=torch.float64) * 3))
        # regressed boxes: some close to faces (compensation candidates), some random
        regressed = torch.where(
            torch.rand(len(anchors), 1, generator=gen, dtype=torch.float64) < 0.3,
            gt[torch.randint(0, len(gt), (len(anchors),), generator=gen)]
            + torch.randn(len(anchors), 4, generator=gen, dtype=torch.float64),
            _random_boxes(len(anchors), gen),
        )
        assigned, labels = dynamic_anchor_match(anchors, regressed, gt)
        R, L = algorithm_1(anchors.tolist(), regressed.tolist(), 0.35, 0.7, gt.tolist())
        assert labels.tolist() == L
        assert torch.allclose(assigned, torch.tensor(R, dtype=torch.float64))
        assert {MATCHED, COMPENSATED, NEGATIVE} <= set(L), "the random case must exercise all three labels"


def test_dam_without_faces() -> None:
    anchors = _random_boxes(10, torch.Generator().manual_seed(1))
    assigned, labels = dynamic_anchor_match(anchors, anchors, torch.zeros(0, 4, dtype=torch.float64))
    assert (labels == NEGATIVE).all() and (assigned == 0).all()


def test_margin_raises_the_positive_loss_only() -> None:
    logits = torch.linspace(-3, 3, 13)
    pos, neg = torch.ones(13), torch.zeros(13)
    with_m = focal_loss_with_margin(logits, pos, 0.2, 0.25, 2.0)
    without = focal_loss_with_margin(logits, pos, 0.0, 0.25, 2.0)
    assert (with_m > without).all()
    assert torch.equal(focal_loss_with_margin(logits, neg, 0.2, 0.25, 2.0), focal_loss_with_margin(logits, neg, 0.0, 0.25, 2.0))


def _setup():
    anchors = torch.tensor([[0.0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 60, 60], [200, 200, 216, 216]])
    gt = torch.tensor([[0.0, 0, 10, 10], [52, 52, 61, 61]])
    return anchors, gt


def test_compensated_anchors_are_weighted_and_normalized_separately() -> None:
    anchors, gt = _setup()
    cfg = LossConfig(margin=0.0)
    logits = torch.tensor([[1.0, -2.0, 0.5, -1.0]])
    # anchor 2 overlaps face 2 with IoU < 0.35 after we shift it: make its own IoU small but its regression exact
    anchors = anchors.clone()
    anchors[2] = torch.tensor([40.0, 40, 56, 56])
    deltas = torch.zeros(1, 4, 4)
    deltas[0, 2] = encode(gt[1:2], anchors[2:3], cfg.variances)[0]
    parts = mbc_loss(logits, deltas, anchors, [gt], cfg)
    assert (parts.matched, parts.compensated) == (1, 1)
    # by hand: focal terms of anchors 0 (pos), 1, 3 (neg) over N1 = 1, plus 0.7 * anchor 2 (pos) over N2 = 1
    targets = torch.tensor([1.0, 0, 1, 0])
    focal = focal_loss_with_margin(logits[0], targets, 0.0, cfg.focal_alpha, cfg.focal_gamma)
    expected_cls = focal[[0, 1, 3]].sum() + 0.7 * focal[2]
    assert torch.allclose(parts.cls, expected_cls)
    # anchor 2 regresses exactly: no regression loss from it; anchor 0 is exactly on its face
    assert parts.reg.item() < 1e-9
    heavier = mbc_loss(logits, deltas, anchors, [gt], LossConfig(margin=0.0, lambda_cls=1.0))
    assert torch.allclose(heavier.cls - parts.cls, 0.3 * focal[2])


def test_empty_image_has_only_negative_loss_and_gradients() -> None:
    anchors, _ = _setup()
    logits = torch.zeros(2, 4, requires_grad=True)
    deltas = torch.zeros(2, 4, 4, requires_grad=True)
    parts = mbc_loss(logits, deltas, anchors, [torch.zeros(0, 4), torch.zeros(0, 4)])
    assert parts.matched == parts.compensated == 0
    assert parts.reg.item() == 0.0 and parts.cls.item() > 0
    parts.total.backward()
    assert logits.grad is not None and (logits.grad > 0).all(), "every anchor is pushed towards background"


def test_few_compensated_anchors_never_outweigh_matched_ones() -> None:
    """N2 is floored at N1: one compensated anchor among many matched ones weighs lambda / N1."""
    cfg = LossConfig(margin=0.0)
    gt = torch.tensor([[0.0, 0, 32, 32]])
    matched = torch.tensor([[0.0, 0, 32, 32]]).repeat(5, 1) + torch.arange(5.0)[:, None] * 0.1
    far = torch.tensor([[40.0, 40, 72, 72]])  # IoU 0 with the face; its regression will be exact
    anchors = torch.cat((matched, far))
    deltas = torch.zeros(1, 6, 4)
    deltas[0, 5] = encode(gt, far, cfg.variances)[0]
    logits = torch.zeros(1, 6)
    parts = mbc_loss(logits, deltas, anchors, [gt], cfg)
    assert (parts.matched, parts.compensated) == (5, 1)
    focal = focal_loss_with_margin(logits[0], torch.ones(6), 0.0, cfg.focal_alpha, cfg.focal_gamma)
    assert torch.allclose(parts.cls, focal[:5].sum() / 5 + 0.7 * focal[5] / 5)
