"""Building blocks that know how to fold themselves.

Every trainable block with a BatchNorm has a ``reparameterize()`` that returns a *new*
inference module with the same function (the RepVGG / MobileOne pattern). The generic
pass in :mod:`acfd_deploy.reparam` walks a model and calls it; blocks never fold in place.
"""

from __future__ import annotations

from typing import TypedDict, cast

import torch
import torch.nn.functional as F
from torch import nn

from acfd_deploy.fold import conv_from_tensors, fuse_conv_bn, sum_branches


class ConvAct(nn.Module):
    """An inference convolution (with bias) optionally followed by ReLU."""

    def __init__(self, conv: nn.Conv2d, act: bool) -> None:
        super().__init__()
        self.conv = conv
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class LevelConvAct(nn.Module):
    """One inference convolution per pyramid level: the fold of a level-shared conv whose
    BatchNorm statistics are kept per level (so the fused kernels differ by level)."""

    def __init__(self, convs: list[nn.Conv2d], act: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor, level: int = 0) -> torch.Tensor:
        return self.act(self.convs[level](x))


class BNArgs(TypedDict):
    """BatchNorm settings every block takes from the config (``**BNArgs`` stays typed)."""

    eps: float
    momentum: float


class ConvBNAct(nn.Module):
    """Conv (no bias) + BatchNorm + optional ReLU: the stem, the AOSA 1x1 and the laterals."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, act: bool = True, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=eps, momentum=momentum)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def reparameterize(self) -> ConvAct:
        weight, bias = fuse_conv_bn(self.conv, self.bn)
        return ConvAct(conv_from_tensors(self.conv, weight, bias), act=isinstance(self.act, nn.ReLU))


class _Branch(nn.Module):
    """One ACB branch: a bias-free conv and one BatchNorm per pyramid level."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], stride: int, levels: int, eps: float, momentum: float) -> None:
        super().__init__()
        padding = (kernel[0] // 2, kernel[1] // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False)
        self.bns = nn.ModuleList(nn.BatchNorm2d(out_ch, eps=eps, momentum=momentum) for _ in range(levels))

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return self.bns[level](self.conv(x))


class ACB(nn.Module):
    """Asymmetric convolution block: parallel 3x3, 1x3 and 3x1 convs, each with its own BN,
    summed (Ding et al. 2019; the paper's Fig. 5). Optional ReLU after the sum.

    ``levels > 1`` shares the three kernels across pyramid levels but keeps a BatchNorm per
    level (as EfficientDet's head does), so features of different scales are normalized
    with their own statistics. Folding then yields one conv per level.
    """

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, act: bool = True, levels: int = 1, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.levels = levels
        self.square = _Branch(in_ch, out_ch, (3, 3), stride, levels, eps, momentum)
        self.hor = _Branch(in_ch, out_ch, (1, 3), stride, levels, eps, momentum)
        self.ver = _Branch(in_ch, out_ch, (3, 1), stride, levels, eps, momentum)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor, level: int = 0) -> torch.Tensor:
        return self.act(self.square(x, level) + self.hor(x, level) + self.ver(x, level))

    @torch.no_grad()
    def fused_kernel(self, level: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 kernel and bias equal to this block at ``level`` (before ReLU)."""
        branches = [fuse_conv_bn(b.conv, cast(nn.BatchNorm2d, b.bns[level])) for b in (self.square, self.hor, self.ver)]
        return sum_branches(branches, (3, 3))

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        act = isinstance(self.act, nn.ReLU)
        convs = [conv_from_tensors(self.square.conv, *self.fused_kernel(level)) for level in range(self.levels)]
        if self.levels == 1:
            return ConvAct(convs[0], act)
        return LevelConvAct(convs, act)


class EffectiveSE(nn.Module):
    """eSE of VoVNetV2: one 1x1 conv on the global average, hard-sigmoid gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))  # relu6(x + 3) / 6
        return x * gate


class WeightedFusion(nn.Module):
    """BiFPN's fast normalized fusion: sum_i relu(w_i) x_i / (sum_j relu(w_j) + 1e-4)."""

    def __init__(self, num_inputs: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_inputs))
        self.eps = eps

    def normalized_weights(self) -> torch.Tensor:
        w = F.relu(self.weight)
        return w / (w.sum() + self.eps)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        w = self.normalized_weights()
        return sum_weighted(inputs, [w[i] for i in range(len(inputs))])

    @torch.no_grad()
    def reparameterize(self) -> FixedFusion:
        return FixedFusion(self.normalized_weights().detach().clone())


class FixedFusion(nn.Module):
    """The inference form of :class:`WeightedFusion`: the normalized weights as constants."""

    weights: torch.Tensor

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return sum_weighted(inputs, [self.weights[i] for i in range(len(inputs))])


def sum_weighted(inputs: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    out = inputs[0] * weights[0]
    for x, w in zip(inputs[1:], weights[1:]):
        out = out + x * w
    return out
