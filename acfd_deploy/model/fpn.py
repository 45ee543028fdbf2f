"""ABi-FPN (Sec. 3.3): BiFPN whose 3x3 convolutions are ACBs.

Each repeat runs a top-down then a bottom-up pass with fast normalized fusion. Upsampling
resizes to the *target tensor's* size (never ``scale_factor=2``), and downsampling is the
backbone's own max-pool, so the pyramid works for any input size, including ones where
no single ``H / stride`` formula gives the level sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from acfd_deploy.configs import ModelConfig
from acfd_deploy.model.backbone import downsample
from acfd_deploy.model.layers import ACB, BNArgs, ConvBNAct, WeightedFusion


class BiFPNLayer(nn.Module):
    def __init__(self, channels: int, levels: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.levels = levels
        # top-down nodes for levels L-2 .. 0 (index = level), bottom-up nodes for 1 .. L-1
        self.td_fuse = nn.ModuleList(WeightedFusion(2) for _ in range(levels - 1))
        self.td_conv = nn.ModuleList(ACB(channels, channels, eps=eps, momentum=momentum) for _ in range(levels - 1))
        self.bu_fuse = nn.ModuleList(WeightedFusion(3 if i < levels - 1 else 2) for i in range(1, levels))
        self.bu_conv = nn.ModuleList(ACB(channels, channels, eps=eps, momentum=momentum) for _ in range(levels - 1))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        L = self.levels
        top_down: list[torch.Tensor] = [features[-1]]
        for level in range(L - 2, -1, -1):
            target = features[level]
            upsampled = F.interpolate(top_down[0], size=target.shape[-2:], mode="nearest")
            top_down.insert(0, self.td_conv[level](self.td_fuse[level]([target, upsampled])))
        outputs = [top_down[0]]
        for level in range(1, L):
            inputs = [features[level]]
            if level < L - 1:
                inputs.append(top_down[level])
            inputs.append(downsample(outputs[-1]))
            outputs.append(self.bu_conv[level - 1](self.bu_fuse[level - 1](inputs)))
        return outputs


class ABiFPN(nn.Module):
    def __init__(self, in_channels: list[int], config: ModelConfig) -> None:
        super().__init__()
        kw: BNArgs = {"eps": config.bn_eps, "momentum": config.bn_momentum}
        width = config.fpn_channels
        self.lateral = nn.ModuleList(ConvBNAct(c, width, 1, act=False, **kw) for c in in_channels)
        self.layers = nn.ModuleList(BiFPNLayer(width, len(in_channels), **kw) for _ in range(config.fpn_repeats))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        features = [lateral(f) for lateral, f in zip(self.lateral, features)]
        for layer in self.layers:
            features = layer(features)
        return features
