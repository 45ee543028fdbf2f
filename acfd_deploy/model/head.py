"""The anchor head (not given by the paper; docs/design.md#what-the-paper-leaves-open).

A tower of ACBs whose kernels are shared across pyramid levels, with BatchNorm per level,
then a 3x3 conv to one face logit and a 3x3 conv to four box deltas per location (one
square anchor per location).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from acfd_deploy.configs import ModelConfig
from acfd_deploy.model.layers import ACB


class AnchorHead(nn.Module):
    def __init__(self, config: ModelConfig, prior_prob: float = 0.01) -> None:
        super().__init__()
        width, levels = config.fpn_channels, config.num_levels
        self.tower = nn.ModuleList(
            ACB(width, width, levels=levels, eps=config.bn_eps, momentum=config.bn_momentum) for _ in range(config.head_layers)
        )
        self.cls = nn.Conv2d(width, 1, 3, padding=1)
        self.reg = nn.Conv2d(width, 4, 3, padding=1)
        self.prior_prob = prior_prob
        self.reset_prior()

    def reset_prior(self) -> None:
        """Focal-loss prior (Lin et al. 2017): every anchor starts at p = prior_prob, so the
        first iterations are not swamped by the loss of 34k easy negatives."""
        nn.init.normal_(self.cls.weight, std=0.01)
        assert self.cls.bias is not None and self.reg.bias is not None
        nn.init.constant_(self.cls.bias, -math.log((1 - self.prior_prob) / self.prior_prob))
        nn.init.normal_(self.reg.weight, std=0.01)
        nn.init.zeros_(self.reg.bias)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> logits [B, N], deltas [B, N, 4], levels concatenated, locations row-major."""
        logits, deltas = [], []
        for level, x in enumerate(features):
            for layer in self.tower:
                x = layer(x, level)
            b = x.shape[0]
            logits.append(self.cls(x).reshape(b, -1))
            deltas.append(self.reg(x).reshape(b, 4, -1).transpose(1, 2))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)
