"""The reparameterization pass on whole networks (docs/design.md#verification-and-tolerances)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import acfd_deploy
from acfd_deploy.calibrate import smooth_random_images
from acfd_deploy.model.layers import ACB, FixedFusion, LevelConvAct, WeightedFusion
from acfd_deploy.reparam import is_reparameterized
from acfd_deploy.verify.compare import TensorDiff, tensor_diff
from acfd_deploy.verify.rules import FP32_TOL

SIZES = [(640, 640), (480, 645), (333, 517)]


def _outputs(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(images)


def _diff(a: nn.Module, b: nn.Module, images: torch.Tensor) -> TensorDiff:
    """Largest score and relative box difference (docs/design.md#verification-and-tolerances), in float64."""
    return tensor_diff(*(tuple(t.numpy() for t in _outputs(m, images)) for m in (a, b)))


@pytest.mark.parametrize("size", SIZES)
def test_tiny_folded_matches_training_graph(tiny_model: nn.Module, size: tuple[int, int]) -> None:
    diff = _diff(tiny_model, acfd_deploy.reparameterize(tiny_model), smooth_random_images(2, *size, seed=11))
    assert diff.anchors > 0 and diff.ok(FP32_TOL, FP32_TOL), diff  # scores <= 1e-4 absolute, boxes <= 1e-4 relative


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_paper_folded_matches_training_graph(paper_model: nn.Module, size: tuple[int, int]) -> None:
    diff = _diff(paper_model, acfd_deploy.reparameterize(paper_model), smooth_random_images(2, *size, seed=12))
    assert diff.ok(FP32_TOL, FP32_TOL), diff


def test_whole_network_fold_is_exact_in_float64(tiny_model: nn.Module) -> None:
    train64 = _copy_double(tiny_model)
    diff = _diff(train64, acfd_deploy.reparameterize(train64), smooth_random_images(2, 157, 203, seed=3).double())
    assert diff.ok(score_atol=1e-10, box_rtol=1e-10), diff


def _copy_double(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double().eval()


def test_folded_structure(tiny_model: nn.Module) -> None:
    folded = acfd_deploy.reparameterize(tiny_model)
    assert is_reparameterized(folded) and not is_reparameterized(tiny_model)
    assert not folded.training
    kinds = {type(m) for m in folded.modules()}
    assert not kinds & {nn.BatchNorm2d, ACB, WeightedFusion}
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size in ((3, 3), (1, 1)) and c.bias is not None for c in convs)
    assert any(isinstance(m, FixedFusion) for m in folded.modules())
    # per-level BN in the head becomes one conv per level
    levels = tiny_model.config.num_levels
    level_convs = [m for m in folded.head.modules() if isinstance(m, LevelConvAct)]
    assert len(level_convs) == tiny_model.config.head_layers and all(len(m.convs) == levels for m in level_convs)
    # three ACB convs become one: the folded graph has fewer conv layers than the training graph
    n_train = sum(isinstance(m, nn.Conv2d) for m in tiny_model.modules())
    assert len(convs) < n_train


def test_input_model_is_untouched(tiny_model: nn.Module) -> None:
    model = acfd_deploy.build_model("acfd-tiny").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types_before = [type(m) for m in model.modules()]
    acfd_deploy.reparameterize(model)
    assert model.training, "the pass must restore the caller's train/eval mode"
    assert [type(m) for m in model.modules()] == types_before
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_folding_twice_changes_nothing(tiny_model: nn.Module) -> None:
    once = acfd_deploy.reparameterize(tiny_model)
    twice = acfd_deploy.reparameterize(once)
    a, b = once.state_dict(), twice.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    images = smooth_random_images(1, 160, 190, seed=5)
    assert torch.equal(_outputs(once, images)[1], _outputs(twice, images)[1])


@pytest.mark.parametrize("levels", [1, 3])
def test_a_foldable_block_passed_itself_is_folded(levels: int) -> None:
    """reparameterize(ACB) folds the block itself, not only its children (it has none to
    fold): the result is the single conv, computing what the block computes."""
    torch.manual_seed(0)
    block = ACB(4, 6, levels=levels).double()
    with torch.no_grad():  # statistics away from the identity, so a wrong fold shows
        for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    folded = acfd_deploy.reparameterize(block)
    assert not isinstance(folded, ACB) and is_reparameterized(folded)
    assert isinstance(folded, LevelConvAct) == (levels > 1)
    assert isinstance(block, ACB) and block.training, "the caller's block stays as it was"
    x = torch.randn(2, 4, 9, 11, dtype=torch.float64)
    block.eval()
    for level in range(levels):
        expected = block(x, level)
        got = folded(x, level) if levels > 1 else folded(x)
        assert (expected - got).abs().max().item() < 1e-9


def test_a_foldable_fusion_passed_itself_is_folded() -> None:
    fusion = WeightedFusion(2)
    folded = acfd_deploy.reparameterize(fusion)
    assert isinstance(folded, FixedFusion) and torch.equal(folded.weights, fusion.normalized_weights().detach())
