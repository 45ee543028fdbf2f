"""How many GFLOPs an artifact computes per image: the folded graph of the config it
carries (what an optimized artifact runs), cached per config and size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_CACHE: dict[tuple[str, int, int], float] = {}


def stored_config(path: Path) -> str | dict[str, Any] | None:
    """The model config an artifact carries (ONNX metadata, checkpoint), if any."""
    from acfd_deploy.checkpoint import CHECKPOINT_SUFFIXES, read_checkpoint

    if path.suffix == ".onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(meta["config"]) if "config" in meta else meta.get("config_name")
    if path.suffix in CHECKPOINT_SUFFIXES:
        return read_checkpoint(path).config
    return None


def network_gflops(path: Path | None, imgsz: tuple[int, int]) -> float | None:
    """GFLOPs per image of the folded network at ``imgsz``; None where the artifact
    does not say which network it is."""
    config = stored_config(path) if path is not None else None
    if config is None:
        return None
    from acfd_deploy import build_model, reparameterize
    from acfd_deploy.configs import resolve_config
    from acfd_deploy.cost import count_flops

    key = (json.dumps(config, sort_keys=True), *imgsz)
    if key not in _CACHE:
        _CACHE[key] = count_flops(reparameterize(build_model(resolve_config(config))), *imgsz)
    return _CACHE[key]


def add_efficiency(rows: list[dict[str, Any]], gflops: float | None, reference_gflops: float) -> None:
    """Network GFLOP/s achieved, and as a fraction of the in-run matrix-product GFLOP/s."""
    if gflops is None:
        return
    for row in rows:
        achieved = gflops * row["batch"] / (row["p50_ms"] / 1e3)
        row["gflops_per_image"] = round(gflops, 2)
        row["achieved_gflops"] = round(achieved, 1)
        row["efficiency_vs_matmul"] = round(achieved / reference_gflops, 3)
