"""Parameter counts, size on disk and FLOPs, measured by running the graph once.

FLOPs count 2 per multiply-accumulate of every convolution (the convention of the
papers this project compares with); normalization, activations, pooling, eSE gating and
box decoding are left out (under 1% here).
"""

from __future__ import annotations

import io

import torch
from torch import nn


def conv_flops(module: nn.Conv2d, output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    macs_per_output = (module.in_channels // module.groups) * kh * kw
    return 2 * macs_per_output * output.numel()


@torch.no_grad()
def count_flops(model: nn.Module, height: int, width: int, batch: int = 1) -> float:
    """GFLOPs of one forward pass at ``height x width`` (per batch)."""
    total = 0
    handles = []

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        total += conv_flops(module, output)

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        dtype = next(model.parameters()).dtype
        model(torch.zeros(batch, 3, height, width, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total / 1e9


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_dict_mb(model: nn.Module) -> float:
    """Size of ``torch.save(state_dict)``: what the challenge's 200 MB limit measures."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell() / 1e6
