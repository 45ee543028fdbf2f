"""Model configurations, as plain dataclasses in a registry (the timm pattern).

A config holds everything needed to rebuild the architecture from nothing, so a
checkpoint that stores ``asdict(config)`` is self-describing. Only shapes live here:
no weights, no training hyper-parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from acfd_deploy.errors import ConfigError


@dataclass(frozen=True)
class StageConfig:
    """One VoVNetV3 stage of AOSA blocks (Table 1: ``conv/concat`` channels, repeats)."""

    conv_channels: int
    concat_channels: int
    blocks: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of one ACFD variant.

    ``stem`` are the output channels of the three stem convolutions (strides 2, 1, 2).
    Each stage after the first starts with MaxPool(3, 2, ceil_mode=True), so level ``i``
    has nominal stride ``4 * 2**i``; ``anchor_scale`` times that stride is the anchor side.
    """

    name: str
    stem: tuple[int, int, int] = (64, 64, 128)
    stages: tuple[StageConfig, ...] = ()
    layers_per_block: int = 5
    fpn_channels: int = 128
    fpn_repeats: int = 2
    head_layers: int = 2
    anchor_scale: float = 4.0
    variances: tuple[float, float] = (0.1, 0.2)
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    notes: str = field(default="", compare=False)

    @property
    def num_levels(self) -> int:
        return len(self.stages)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(4 * 2**i for i in range(self.num_levels))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config stored in a checkpoint; unknown or missing fields are errors."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config fields: {', '.join(unknown)}")
        values = dict(data)
        try:
            values["stages"] = tuple(s if isinstance(s, StageConfig) else StageConfig(**s) for s in values.get("stages", ()))
            for key in ("stem", "variances", "pixel_mean", "pixel_std"):
                if key in values:
                    values[key] = tuple(values[key])
            config = cls(**values)
        except TypeError as exc:
            raise ConfigError(f"malformed model config: {exc}") from None
        config.validate()
        return config

    def validate(self) -> None:
        if self.num_levels < 2:
            raise ConfigError(f"config {self.name!r}: needs at least two stages, has {self.num_levels}")
        if len(self.stem) != 3 or min(self.stem) < 1:
            raise ConfigError(f"config {self.name!r}: stem must be three positive channel counts")
        for s in self.stages:
            if min(s.conv_channels, s.concat_channels, s.blocks) < 1:
                raise ConfigError(f"config {self.name!r}: stage sizes must be positive, got {s}")
        if min(self.layers_per_block, self.fpn_channels, self.fpn_repeats) < 1 or self.head_layers < 0:
            raise ConfigError(f"config {self.name!r}: block, FPN and head sizes must be positive")


_PAPER_STAGES = (
    StageConfig(128, 256, 1),
    StageConfig(160, 512, 1),
    StageConfig(192, 768, 2),
    StageConfig(224, 1024, 2),
    StageConfig(128, 128, 1),
    StageConfig(128, 128, 1),
)

_REGISTRY: dict[str, ModelConfig] = {}


def register(config: ModelConfig) -> ModelConfig:
    config.validate()
    _REGISTRY[config.name] = config
    return config


register(
    ModelConfig(
        name="acfd-vovnetv3-51",
        stages=_PAPER_STAGES,
        notes="VoVNetV3-51 of the paper's Table 1; ABi-FPN width and repeats and the head are our choice.",
    )
)
register(
    ModelConfig(
        name="acfd-tiny",
        stem=(16, 16, 32),
        stages=(
            StageConfig(16, 32, 1),
            StageConfig(20, 40, 1),
            StageConfig(24, 48, 2),
            StageConfig(32, 64, 2),
            StageConfig(24, 32, 1),
            StageConfig(24, 32, 1),
        ),
        fpn_channels=32,
        fpn_repeats=2,
        head_layers=2,
        notes="Same topology as acfd-vovnetv3-51 with small widths, for tests and the CPU demo.",
    )
)


def list_configs() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model config {name!r}; known: {', '.join(list_configs())}") from None


def resolve_config(config: str | ModelConfig | dict[str, Any]) -> ModelConfig:
    """Accept a registry name, a config object or a stored dict."""
    if isinstance(config, ModelConfig):
        config.validate()
        return config
    if isinstance(config, str):
        return get_config(config)
    if isinstance(config, dict):
        return ModelConfig.from_dict(config)
    raise ConfigError(f"a model config must be a name, a ModelConfig or a dict, got {type(config).__name__}")
