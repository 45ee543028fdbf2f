"""Where the exported weights come from: a checkpoint, the bundled demo model, or random
weights with calibrated BatchNorm statistics (a demonstration of the toolchain)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from acfd_deploy.export.options import ExportOptions
from acfd_deploy.fileio import sha256_file


@dataclass(frozen=True)
class WeightsInfo:
    source: str  # a path, or "random"
    sha256: str | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_model(opts: ExportOptions) -> tuple[nn.Module, WeightsInfo]:
    """The model to export (a training graph, or a folded graph from a deploy checkpoint)
    and where its weights came from."""
    import acfd_deploy
    from acfd_deploy.calibrate import well_conditioned
    from acfd_deploy.reparam import is_reparameterized
    from acfd_deploy.resources import demo_weights

    if opts.random_init:
        assert opts.config is not None  # validate() checked it
        torch.manual_seed(opts.seed)
        model = well_conditioned(acfd_deploy.build_model(opts.config), seed=opts.seed)
        note = f"random weights with calibrated BN statistics (well_conditioned, seed {opts.seed}); not a trained detector"
        return model, WeightsInfo("random", None, note)
    note = ""
    weights = opts.weights
    if weights is None:
        weights = demo_weights()
        note = "the bundled demo model, acfd-tiny trained on synthetic cartoon faces, not on iCartoonFace (its card: acfd-tiny-demo.md)"
    model = acfd_deploy.load_model(weights, config=opts.config)
    if is_reparameterized(model):
        note = "folded (deploy) checkpoint: no training graph to compare with"
    return model, WeightsInfo(str(Path(weights).resolve()), sha256_file(weights), note)


def artifact_stem(opts: ExportOptions, config_name: str) -> str:
    """The file name stem of every artifact: the weights' name, else the config's."""
    from acfd_deploy.resources import DEMO_NAME

    if opts.weights is not None:
        return Path(opts.weights).name.split(".")[0] or config_name
    return config_name if opts.random_init else DEMO_NAME
