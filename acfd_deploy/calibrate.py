"""Give an untrained network realistic BatchNorm statistics.

Parity checks on freshly initialized weights lie: with running mean 0 and variance 1 the
BNs do not normalize anything, activations grow stage after stage, and rounding noise
grows with them until an exact fold "fails". Real trained networks are well-conditioned.
``calibrate_batchnorm`` measures each BN's statistics on images (as training would) and
then shrinks every BN's affine parameters, which keeps activations in a trained-like range
(docs/design.md#well-conditioned-weights).
"""

from __future__ import annotations

import torch
from torch import nn


def smooth_random_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Float32 RGB 0..255 images with structure at several scales (not white noise, which
    no camera or cartoon produces and which BN statistics would over-fit to)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.zeros(batch, 3, height, width)
    for cells in (2, 8, 32):
        coarse = torch.rand(batch, 3, cells, cells, generator=gen)
        image += nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    image /= 3
    image += 0.05 * torch.randn(batch, 3, height, width, generator=gen)
    return (image.clamp(0, 1) * 255).contiguous()


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor | list[torch.Tensor], shrink: float = 0.7, seed: int = 0) -> nn.Module:
    """Set every BN's running statistics to their average over ``images`` (one or more
    batches), then multiply each BN's gamma and beta by ``shrink``. Modifies ``model`` in
    place and returns it in eval mode. Random gammas in [0.8, 1.2] (before shrinking) make
    the channels differ, as in a trained network."""
    batches = images if isinstance(images, list) else [images]
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all calibration batches
        if bn.affine:
            bn.weight.copy_(torch.empty_like(bn.weight).uniform_(0.8, 1.2, generator=gen))
            bn.bias.copy_(torch.empty_like(bn.bias).uniform_(-0.1, 0.1, generator=gen))
    model.train()
    for batch in batches:
        model(batch)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
        if bn.affine:
            bn.weight.mul_(shrink)
            bn.bias.mul_(shrink)
    return model.eval()


@torch.no_grad()
def well_conditioned(model: nn.Module, height: int = 256, width: int = 320, seed: int = 0, head_std: float = 0.05) -> nn.Module:
    """Make an untrained ACFD behave like a trained one for parity checks: calibrated BN
    statistics, and prediction convs wide enough that scores spread over (0, 1) and boxes
    move off their anchors (a freshly initialized head predicts the prior everywhere,
    which would make a score comparison trivially pass)."""
    gen = torch.Generator().manual_seed(seed)
    head = getattr(model, "head", None)
    if head is not None:
        for conv in (head.cls, head.reg):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * head_std)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.5)
    return calibrate_batchnorm(model, smooth_random_images(2, height, width, seed=seed + 1), seed=seed)
