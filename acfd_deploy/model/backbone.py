"""VoVNetV3 (the paper's Sec. 3.2, Table 1): a stem and stages of AOSA blocks."""

from __future__ import annotations

import torch
from torch import nn

from acfd_deploy.configs import ModelConfig, StageConfig
from acfd_deploy.model.layers import ACB, BNArgs, ConvBNAct, EffectiveSE


def downsample(x: torch.Tensor) -> torch.Tensor:
    """MaxPool(3, 2, ceil_mode=True) between stages: floor(n / 2) outputs for n >= 2.

    The pyramid's bottom-up path reuses it, so its outputs match the backbone's sizes
    exactly, whatever the input size.
    """
    if torch.compiler.is_exporting():
        # torch.export / AOTInductor: the same pool as floor mode over one pixel of -inf end
        # padding (ceil((n - 3) / 2) + 1 outputs for every n, each window's max unchanged).
        # Inductor's ceil-mode lowering picks its size formula from the traced size, which
        # gave an AOTInductor package one row too few at other sizes (docs/export.md).
        x = nn.functional.pad(x, (0, 1, 0, 1), value=float("-inf"))
        return nn.functional.max_pool2d(x, kernel_size=3, stride=2)
    return nn.functional.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)


class AOSABlock(nn.Module):
    """Asymmetric one-shot aggregation (Fig. 2): a chain of ACBs whose outputs are all
    concatenated with the input once, squeezed by a 1x1 conv, gated by eSE, and added to
    the input when the block keeps the width (from the second block of a stage on)."""

    def __init__(self, in_ch: int, stage: StageConfig, layers: int, residual: bool, eps: float, momentum: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        ch = in_ch
        for _ in range(layers):
            self.layers.append(ACB(ch, stage.conv_channels, eps=eps, momentum=momentum))
            ch = stage.conv_channels
        self.concat_conv = ConvBNAct(in_ch + layers * stage.conv_channels, stage.concat_channels, 1, eps=eps, momentum=momentum)
        self.ese = EffectiveSE(stage.concat_channels)
        self.residual = residual and in_ch == stage.concat_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outputs.append(y)
        y = self.ese(self.concat_conv(torch.cat(outputs, dim=1)))
        return y + x if self.residual else y


class Stage(nn.Module):
    def __init__(self, in_ch: int, stage: StageConfig, config: ModelConfig, pool: bool) -> None:
        super().__init__()
        self.pool = pool
        blocks = []
        for i in range(stage.blocks):
            blocks.append(AOSABlock(in_ch, stage, config.layers_per_block, residual=i > 0, eps=config.bn_eps, momentum=config.bn_momentum))
            in_ch = stage.concat_channels
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(downsample(x) if self.pool else x)


class VoVNetV3(nn.Module):
    """Returns one feature map per stage, at nominal strides 4, 8, ..., 4 * 2**(L-1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c1, c2, c3 = config.stem
        kw: BNArgs = {"eps": config.bn_eps, "momentum": config.bn_momentum}
        self.stem = nn.Sequential(
            ConvBNAct(3, c1, 3, 2, **kw),
            ConvBNAct(c1, c2, 3, 1, **kw),
            ConvBNAct(c2, c3, 3, 2, **kw),
        )
        self.stages = nn.ModuleList()
        in_ch = c3
        for i, stage in enumerate(config.stages):
            self.stages.append(Stage(in_ch, stage, config, pool=i > 0))
            in_ch = stage.concat_channels
        self.out_channels = [s.concat_channels for s in config.stages]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
