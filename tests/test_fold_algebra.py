"""The fold's algebra, in float64, block by block (docs/design.md#well-conditioned-weights: <= 1e-10)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from acfd_deploy.fold import embed_kernel, fuse_conv_bn_tensors
from acfd_deploy.model.layers import ACB, ConvBNAct, WeightedFusion

TOL = 1e-10


def randomize_bn(module: nn.Module, seed: int) -> None:
    """BN statistics and affine parameters drawn from a sane, non-trivial range."""
    gen = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) * 1.5 + 0.25)
            if bn.affine:
                bn.weight.data.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                bn.bias.data.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.3)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(17, 23), (32, 9), (5, 5)])
@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_acb_fold_is_exact(stride: int, size: tuple[int, int], eps: float) -> None:
    torch.manual_seed(stride * 100 + size[0])
    block = ACB(6, 5, stride=stride, act=True, eps=eps).double()
    randomize_bn(block, seed=size[1])
    block.eval()
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    folded = block.reparameterize()
    conv = folded.conv
    assert conv.kernel_size == (3, 3) and conv.stride == (stride, stride)
    assert max_diff(block(x), folded(x)) < TOL


def test_acb_reads_each_bn_eps() -> None:
    block = ACB(3, 4).double()
    randomize_bn(block, seed=1)
    block.square.bns[0].eps = 1e-2
    block.hor.bns[0].eps = 1e-1
    block.eval()
    x = torch.randn(1, 3, 11, 13, dtype=torch.float64)
    assert max_diff(block(x), block.reparameterize()(x)) < TOL


def test_per_level_acb_folds_to_one_conv_per_level() -> None:
    block = ACB(4, 4, levels=3).double()
    randomize_bn(block, seed=7)
    block.eval()
    folded = block.reparameterize()
    x = torch.randn(2, 4, 9, 14, dtype=torch.float64)
    outs = []
    for level in range(3):
        outs.append(folded(x, level))
        assert max_diff(block(x, level), outs[-1]) < TOL
    assert max_diff(outs[0], outs[1]) > 1e-3, "levels must keep their own statistics"


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3])
def test_conv_bn_fold_is_exact(stride: int, kernel: int) -> None:
    block = ConvBNAct(5, 7, kernel, stride, eps=1e-3).double()
    randomize_bn(block, seed=kernel)
    block.eval()
    x = torch.randn(2, 5, 15, 21, dtype=torch.float64)
    assert max_diff(block(x), block.reparameterize()(x)) < TOL


def test_affine_false_bn_and_existing_conv_bias() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True).double()
    bn = nn.BatchNorm2d(4, affine=False, eps=1e-4).double()
    randomize_bn(bn, seed=3)
    bn.eval()
    x = torch.randn(2, 3, 10, 7, dtype=torch.float64)
    w, b = fuse_conv_bn_tensors(conv.weight, conv.bias, bn.running_mean, bn.running_var, None, None, bn.eps)
    fused = nn.functional.conv2d(x, w, b, padding=1)
    assert max_diff(bn(conv(x)), fused) < TOL


def test_embed_kernel_places_branches_in_middle_row_and_column() -> None:
    row = torch.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    col = torch.arange(1.0, 4.0).reshape(1, 1, 3, 1)
    r, c = embed_kernel(row)[0, 0], embed_kernel(col)[0, 0]
    assert torch.equal(r[1], row[0, 0, 0]) and r[0].abs().sum() == 0 and r[2].abs().sum() == 0
    assert torch.equal(c[:, 1], col[0, 0, :, 0]) and c[:, 0].abs().sum() == 0 and c[:, 2].abs().sum() == 0
    with pytest.raises(ValueError):
        embed_kernel(torch.zeros(1, 1, 2, 3))


def test_fusion_weights_become_constants() -> None:
    fusion = WeightedFusion(3).double()
    fusion.weight.data = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # relu drops the negative one
    xs = [torch.randn(1, 2, 4, 5, dtype=torch.float64) for _ in range(3)]
    fixed = fusion.reparameterize()
    # constants: a buffer (saved, moved with the module), nothing left to train
    assert list(fixed.parameters()) == [] and set(dict(fixed.named_buffers())) == {"weights"}
    assert not fixed.weights.requires_grad and torch.equal(fixed.weights, fusion.normalized_weights().detach())
    assert fixed.weights.data_ptr() != fusion.weight.data_ptr()  # a copy: training the fusion on does not move it
    expected = (0.5 * xs[0] + 2.0 * xs[2]) / (2.5 + 1e-4)
    assert max_diff(fusion(xs), expected) < TOL
    assert max_diff(fixed(xs), expected) < TOL
