"""The algebra of reparameterization, as pure functions on tensors.

Eq. 4 of the paper folds a BatchNorm into the convolution before it::

    a = gamma / sqrt(var + eps);  W' = W * a;  B' = (B - mean) * a + beta

and the asymmetric convolution block (ACB) folds because convolution is linear in its
kernel: a 1x3 kernel is a 3x3 kernel whose top and bottom rows are zero, so the three
branches sum into one 3x3 kernel. These functions never touch modules, so the tests can
check them in float64 on their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fuse_conv_bn_tensors(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4. ``gamma``/``beta`` of ``None`` is an ``affine=False`` BatchNorm (1 and 0)."""
    if gamma is None:
        gamma = torch.ones_like(running_var)
    if beta is None:
        beta = torch.zeros_like(running_mean)
    if bias is None:
        bias = torch.zeros_like(running_mean)
    scale = gamma / torch.sqrt(running_var + eps)
    fused_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    fused_bias = (bias - running_mean) * scale + beta
    return fused_weight, fused_bias


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 for modules, reading this BN's own ``eps`` and affine setting."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    return fuse_conv_bn_tensors(
        conv.weight,
        conv.bias,
        bn.running_mean,
        bn.running_var,
        bn.weight if bn.affine else None,
        bn.bias if bn.affine else None,
        bn.eps,
    )


def embed_kernel(kernel: torch.Tensor, size: tuple[int, int] = (3, 3)) -> torch.Tensor:
    """Zero-pad a ``kh x kw`` kernel to ``size``, centred (1x3 -> middle row of a 3x3)."""
    kh, kw = kernel.shape[-2:]
    th, tw = size
    if (th - kh) % 2 or (tw - kw) % 2 or kh > th or kw > tw:
        raise ValueError(f"cannot centre a {kh}x{kw} kernel in {th}x{tw}")
    pad_h, pad_w = (th - kh) // 2, (tw - kw) // 2
    return F.pad(kernel, (pad_w, pad_w, pad_h, pad_h))


def sum_branches(branches: list[tuple[torch.Tensor, torch.Tensor]], size: tuple[int, int] = (3, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum parallel conv branches (already BN-fused) into one kernel and bias."""
    weight = sum(embed_kernel(w, size) for w, _ in branches)
    bias = sum(b for _, b in branches)
    assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
    return weight, bias


def conv_from_tensors(template: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A biased Conv2d with ``template``'s stride, groups and dtype, holding ``weight``.

    Padding becomes ``kernel // 2`` because the folded kernel is centred: that is what the
    3x3 branch of an ACB (pad 1) and the 1x3 (pad (0, 1)) and 3x1 (pad (1, 0)) agree on.
    """
    out_ch, in_per_group, kh, kw = weight.shape
    conv = nn.Conv2d(
        in_per_group * template.groups,
        out_ch,
        (kh, kw),
        stride=(template.stride[0], template.stride[1]),
        padding=(kh // 2, kw // 2),
        dilation=(template.dilation[0], template.dilation[1]),
        groups=template.groups,
        bias=True,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        assert conv.bias is not None
        conv.bias.copy_(bias)
    return conv
