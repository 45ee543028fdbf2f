"""The training graph: shapes, anchors, outputs, input checks (docs/design.md#what-the-paper-fixes, #public-contracts)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import acfd_deploy
from acfd_deploy.cost import count_params
from acfd_deploy.errors import ConfigError, InputError
from acfd_deploy.model.anchors import anchors_for_features, feature_sizes, min_input_size, num_anchors
from acfd_deploy.model.detector import TrainOutput
from acfd_deploy.model.layers import ACB


def test_paper_anchor_counts_and_level_shapes() -> None:
    cfg = acfd_deploy.get_config("acfd-vovnetv3-51")
    assert num_anchors(640, 640, cfg) == 34125
    assert num_anchors(480, 645, cfg) == 25885
    assert feature_sizes(480, 645, cfg) == [(120, 162), (60, 81), (30, 40), (15, 20), (7, 10), (3, 5)]
    assert feature_sizes(640, 640, cfg) == [(160, 160), (80, 80), (40, 40), (20, 20), (10, 10), (5, 5)]


@pytest.mark.parametrize("size", [(640, 640), (480, 645), (333, 517), (125, 130)])
def test_actual_feature_shapes_match_size_arithmetic(tiny_model: nn.Module, size: tuple[int, int]) -> None:
    """The head sees exactly the shapes that feature_sizes() predicts, and anchors follow them."""
    shapes = []
    hooks = [tiny_model.fpn.register_forward_hook(lambda _m, _i, out: shapes.extend(tuple(f.shape[-2:]) for f in out))]
    try:
        with torch.no_grad():
            boxes, scores = tiny_model(torch.full((1, 3, *size), 128.0))
    finally:
        for h in hooks:
            h.remove()
    assert shapes == feature_sizes(*size, tiny_model.config)
    assert boxes.shape == (1, num_anchors(*size, tiny_model.config), 4)


def test_anchors_are_square_and_scale_with_stride() -> None:
    features = [torch.zeros(1, 1, 3, 5), torch.zeros(1, 1, 2, 2)]
    anchors = anchors_for_features(features, (4, 8), 4.0)
    assert anchors.shape == (15 + 4, 4)
    sides = anchors[:, 2:] - anchors[:, :2]
    assert torch.allclose(sides[:15], torch.full((15, 2), 16.0)) and torch.allclose(sides[15:], torch.full((4, 2), 32.0))
    # row-major order: the second anchor is one stride to the right of the first
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert centres[0].tolist() == [2.0, 2.0] and centres[1].tolist() == [6.0, 2.0] and centres[5].tolist() == [2.0, 6.0]


def test_min_input_size() -> None:
    cfg = acfd_deploy.get_config("acfd-tiny")
    n = min_input_size(cfg)
    assert n == 125
    assert min(min(s) for s in feature_sizes(n, n, cfg)) == 1
    assert min(min(s) for s in feature_sizes(n - 1, n - 1, cfg)) == 0


def test_eval_outputs_follow_the_contract(tiny_model: nn.Module) -> None:
    images = torch.rand(2, 3, 333, 517) * 255
    with torch.no_grad():
        boxes, scores = tiny_model(images)
    n = num_anchors(333, 517, tiny_model.config)
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n)
    assert boxes.dtype == scores.dtype == torch.float32
    assert torch.isfinite(boxes).all() and ((scores >= 0) & (scores <= 1)).all()
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()
    assert scores.std() > 0.01, "well-conditioned test weights must spread the scores"


def test_train_mode_exposes_what_the_loss_needs() -> None:
    model = acfd_deploy.build_model("acfd-tiny").train()
    out = model(torch.rand(2, 3, 160, 192) * 255)
    assert isinstance(out, TrainOutput)
    n = num_anchors(160, 192, model.config)
    assert out.logits.shape == (2, n) and out.deltas.shape == (2, n, 4) and out.anchors.shape == (n, 4)
    out.logits.sum().backward()
    assert model.head.cls.weight.grad is not None


def test_parameter_counts() -> None:
    assert count_params(acfd_deploy.build_model("acfd-tiny")) < 1_000_000
    with torch.device("meta"):
        paper = acfd_deploy.build_model("acfd-vovnetv3-51")
    assert 40e6 < count_params(paper) < 50e6
    # Table 1: five ACBs per AOSA block, blocks per stage 1, 1, 2, 2, 1, 1
    assert sum(isinstance(m, ACB) for m in paper.backbone.modules()) == 5 * 8


def test_unknown_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown model config 'acfd-huge'.*acfd-tiny"):
        acfd_deploy.build_model("acfd-huge")


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(3, 200, 200) * 255, "4 dimensions"),
        (torch.rand(1, 4, 200, 200) * 255, "3 \\(RGB\\) channels"),
        (torch.randint(0, 255, (1, 3, 200, 200), dtype=torch.uint8), "must be float32.*got uint8"),
        (torch.rand(1, 3, 100, 300) * 255, "at least 125x125"),
        ([[1.0]], "torch.Tensor"),
    ],
)
def test_bad_images_are_rejected(tiny_model: nn.Module, images: torch.Tensor, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tiny_model(images)
    folded = acfd_deploy.reparameterize(tiny_model)
    with pytest.raises(InputError, match=message):
        folded(images)
