"""What a served model needs to know, as Triton model-config ``parameters`` (strings).

The repository writer puts these in each ``config.pbtxt``; the Python-backend models read
them back in ``initialize`` from ``args["model_config"]``. One dataclass for both sides,
so a key cannot be written under one name and read under another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.detector import DEFAULT_SCALE
from acfd_deploy.pipeline.io import DEFAULT_MAX_PIXELS
from acfd_deploy.pipeline.preprocess import DEFAULT_MIN_SIZE
from acfd_deploy.runtime.triton_runner import flat_parameters

# where the end-to-end model gets the raw network's outputs: its own runner on the artifact
# ("local": acfd-serve) or another model of the same server through BLS (business logic
# scripting), "bls:<engine model name>": the stock server's TensorRT / ONNX Runtime engine
LOCAL_ENGINE = "local"
BLS_PREFIX = "bls:"


def format_scales(scales: tuple[tuple[int, int], ...]) -> str:
    """``((640, 860),)`` -> ``"640x860"``; several scales are comma-separated."""
    return ",".join(f"{h}x{w}" for h, w in scales)


def parse_scales(text: str) -> tuple[tuple[int, int], ...]:
    try:
        scales = tuple((int(h), int(w)) for h, w in (item.split("x") for item in text.split(",") if item.strip()))
    except ValueError:
        raise AcfdError(f"bad scales parameter {text!r}: expected HxW[,HxW...]") from None
    if not scales:
        raise AcfdError("the scales parameter is empty")
    return scales


@dataclass(frozen=True)
class ModelParams:
    """Settings of one served model. ``artifact`` is empty for a BLS end-to-end model and
    for a stock-server engine (whose file sits in its version folder)."""

    artifact: str = ""
    device: str = "auto"
    precision: str = "unknown"
    min_size: int = DEFAULT_MIN_SIZE
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,)
    keep_ratio: bool = False
    conf: float = 0.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    engine: str = LOCAL_ENGINE
    threads: int = 0  # torch intra-op threads in the model's process; 0: leave torch's default
    extra: dict[str, str] = field(default_factory=dict)

    def to_parameters(self) -> dict[str, str]:
        params = {
            "precision": self.precision,
            "min_size": str(self.min_size),
            "scales": format_scales(self.scales),
            "keep_ratio": "true" if self.keep_ratio else "false",
            "conf": repr(float(self.conf)),
            "max_pixels": str(self.max_pixels),
            "engine": self.engine,
            "device": self.device,
            "threads": str(self.threads),
            **self.extra,
        }
        if self.artifact:
            params["artifact"] = self.artifact
        return params

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> ModelParams:
        """From ``{key: "value"}`` or Triton's JSON form ``{key: {"string_value": "value"}}``."""
        flat = flat_parameters(params)
        known = {"artifact", "device", "precision", "min_size", "scales", "keep_ratio", "conf", "max_pixels", "engine", "threads"}
        try:
            return cls(
                artifact=flat.get("artifact", ""),
                device=flat.get("device", "auto") or "auto",
                precision=flat.get("precision", "unknown") or "unknown",
                min_size=int(flat.get("min_size", DEFAULT_MIN_SIZE)),
                scales=parse_scales(flat.get("scales", format_scales((DEFAULT_SCALE,)))),
                keep_ratio=flat.get("keep_ratio", "false").lower() == "true",
                conf=float(flat.get("conf", 0.0)),
                max_pixels=int(flat.get("max_pixels", DEFAULT_MAX_PIXELS)),
                engine=flat.get("engine", LOCAL_ENGINE) or LOCAL_ENGINE,
                threads=int(flat.get("threads", 0) or 0),
                extra={k: v for k, v in flat.items() if k not in known},
            )
        except ValueError as exc:
            raise AcfdError(f"bad model parameters {flat}: {exc}") from None

    @property
    def bls_model(self) -> str | None:
        """The engine model's name when the end-to-end model calls it through BLS."""
        return self.engine[len(BLS_PREFIX) :] if self.engine.startswith(BLS_PREFIX) else None
