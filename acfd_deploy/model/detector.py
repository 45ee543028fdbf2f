"""The ACFD detector: normalization, VoVNetV3, ABi-FPN, anchor head, box decoding.

Everything from raw pixels to boxes happens inside ``forward``, so every exported artifact
takes the same input (float32 RGB 0..255, NCHW, any size) and gives the same outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from acfd_deploy.boxes import decode
from acfd_deploy.configs import ModelConfig
from acfd_deploy.errors import InputError
from acfd_deploy.model.anchors import anchors_for_features, min_input_size
from acfd_deploy.model.backbone import VoVNetV3
from acfd_deploy.model.fpn import ABiFPN
from acfd_deploy.model.head import AnchorHead


class TrainOutput(NamedTuple):
    """What the loss needs: raw logits [B, N], deltas [B, N, 4] and anchors [N, 4] (xyxy)."""

    logits: torch.Tensor
    deltas: torch.Tensor
    anchors: torch.Tensor


def _is_exporting() -> bool:
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


class ACFD(nn.Module):
    """Training mode returns :class:`TrainOutput`; eval mode returns ``(boxes, scores)``:
    boxes ``[B, N, 4]`` xyxy in input pixels, scores ``[B, N]`` in [0, 1], both float32."""

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.min_size = min_input_size(config)
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).reshape(1, 3, 1, 1), persistent=False)
        self.backbone = VoVNetV3(config)
        self.fpn = ABiFPN(self.backbone.out_channels, config)
        self.head = AnchorHead(config)

    def check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor):
            raise InputError(f"images must be a torch.Tensor [B,3,H,W], got {type(images).__name__}")
        if images.dim() != 4:
            raise InputError(f"images must have 4 dimensions [B,3,H,W], got shape {tuple(images.shape)}")
        if images.shape[1] != 3:
            raise InputError(f"images must have 3 (RGB) channels in dim 1, got shape {tuple(images.shape)}")
        expected = self.pixel_mean.dtype
        if images.dtype != expected:
            raise InputError(
                f"images must be {str(expected).removeprefix('torch.')} (RGB values 0..255), got {str(images.dtype).removeprefix('torch.')}"
            )
        h, w = images.shape[-2:]
        if min(h, w) < self.min_size:
            raise InputError(
                f"images must be at least {self.min_size}x{self.min_size} for {self.config.name} "
                f"({self.config.num_levels} pyramid levels), got {h}x{w}"
            )

    def forward(self, images: torch.Tensor) -> TrainOutput | tuple[torch.Tensor, torch.Tensor]:
        if not _is_exporting():
            self.check_images(images)
        x = (images - self.pixel_mean) / self.pixel_std
        features = self.fpn(self.backbone(x))
        logits, deltas = self.head(features)
        anchors = anchors_for_features(features, self.config.strides, self.config.anchor_scale)
        if self.training:
            return TrainOutput(logits, deltas, anchors)
        # decode in float32 even for a half-precision network: pixel coordinates up to a
        # few thousand lose whole pixels in fp16
        out_dtype = torch.promote_types(deltas.dtype, torch.float32)  # fp16 -> fp32; fp64 stays
        boxes = decode(deltas.to(out_dtype), anchors.to(out_dtype), self.config.variances)
        return boxes, torch.sigmoid(logits.to(out_dtype))


def build_model(config: str | ModelConfig | dict) -> ACFD:
    """The training graph of a registered (or given) config, Kaiming-initialized."""
    from acfd_deploy.configs import resolve_config

    model = ACFD(resolve_config(config))
    init_weights(model)
    return model


def init_weights(model: nn.Module) -> None:
    """Kaiming initialization as the paper trains from scratch (Sec. 4.1)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    head = getattr(model, "head", None)
    if isinstance(head, AnchorHead):
        head.reset_prior()
