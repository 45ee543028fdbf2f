"""Reading and writing checkpoints, strictly and without running code.

Accepted forms (docs/design.md#public-contracts): a bare state_dict, or a dict holding it under
``"model"`` or ``"state_dict"`` with an optional ``"config"`` (a registry name or a stored
config dict); keys may carry DDP's ``module.`` or ``torch.compile``'s ``_orig_mod.``
prefix; ``.safetensors`` files keep the config in their metadata. ``torch.load`` always
runs with ``weights_only=True``, so a pickle crafted to execute code is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from acfd_deploy.configs import ModelConfig, list_configs, resolve_config
from acfd_deploy.errors import CheckpointError, one_line
from acfd_deploy.fileio import atomic_path, require_file

# the files load_model reads; every tool that dispatches on a model path asks this
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
TRAIN_GRAPH = "train"
DEPLOY_GRAPH = "deploy"
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class Checkpoint:
    """The parts of a weights file that matter for building the model."""

    state_dict: dict[str, torch.Tensor]
    config: str | dict[str, Any] | None
    graph: str | None
    extra: dict[str, Any]


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Save weights with their config and graph kind (``train`` or ``deploy``), atomically.

    ``.safetensors`` stores the config as JSON metadata; anything else is a torch zip file
    that ``torch.load(weights_only=True)`` reads.
    """
    from acfd_deploy import __version__
    from acfd_deploy.reparam import is_reparameterized

    config: ModelConfig = model.config  # type: ignore[assignment]
    graph = DEPLOY_GRAPH if is_reparameterized(model) else TRAIN_GRAPH
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {"config": json.dumps(config.to_dict()), "graph": graph, "acfd_deploy_version": __version__}
            save_file(state, str(tmp), metadata=meta)
        else:
            payload = {"model": state, "config": config.to_dict(), "graph": graph, "acfd_deploy_version": __version__}
            payload.update(extra or {})
            torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    path = require_file(path, "weights file", CheckpointError)
    if path.stat().st_size == 0:
        raise CheckpointError(f"weights file is empty: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_torch(path)


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118  (a safe_open handle, not a dict)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({_short(exc)})") from None
    config: str | dict[str, Any] | None = None
    if "config" in meta:
        try:
            config = json.loads(meta["config"])
        except json.JSONDecodeError:
            config = meta["config"]  # a bare registry name
    return Checkpoint(_strip_prefixes(state, path), config, meta.get("graph"), {})


def _read_torch(path: Path) -> Checkpoint:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):  # torch.save writes zip files; bare pickles are not checkpoints
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (not a torch.save zip file)") from None
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors and plain containers; refusing to unpickle them "
                "(a crafted checkpoint could run code). Save a state_dict instead"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({_short(exc)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint or is truncated ({_short(exc)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict or a dict with 'model' or 'state_dict'")
    config = obj.get("config")
    graph = obj.get("graph")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            state = obj[key]
            extra = {k: v for k, v in obj.items() if k not in (key, "config", "graph")}
            break
    else:
        state, config, graph, extra = obj, None, None, {}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} has no state_dict of tensors (expected a state_dict, or a dict with one under 'model' or 'state_dict')"
        )
    if config is not None and not isinstance(config, (str, dict)):
        raise CheckpointError(f"{path}: stored 'config' must be a config name or dict, got {type(config).__name__}")
    return Checkpoint(_strip_prefixes(state, path), config, graph if isinstance(graph, str) else None, extra)


def _strip_prefixes(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        stripped = key
        while stripped.startswith(_PREFIXES):
            stripped = stripped.split(".", 1)[1]
        if stripped in out:
            raise CheckpointError(f"{path}: key {stripped!r} appears both with and without a 'module.' prefix")
        out[stripped] = value
    return out


def _short(exc: BaseException, limit: int = 120) -> str:
    return one_line(exc, limit, ellipsis=True)


def _guess_graph(state: dict[str, torch.Tensor]) -> str:
    return TRAIN_GRAPH if any(".bn." in k or ".bns." in k or k.endswith("running_mean") for k in state) else DEPLOY_GRAPH


@lru_cache(maxsize=16)
def _shapes_of(config_json: str, graph: str) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of a config's graph, built on the meta device (no memory, fast)."""
    from acfd_deploy.model.detector import build_model
    from acfd_deploy.reparam import reparameterize

    with torch.device("meta"):
        model = build_model(json.loads(config_json))
        if graph == DEPLOY_GRAPH:
            model = reparameterize(model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _mismatch(expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} (file {list(state[k].shape)}, model {list(expected[k])})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != expected[k]
    )
    return missing, unexpected, misshaped


def _matching_configs(state: dict[str, torch.Tensor], graph: str) -> list[str]:
    return [n for n in list_configs() if not any(_mismatch(_shapes_of(json.dumps(resolve_config(n).to_dict()), graph), state))]


def _listing(label: str, items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit]) + (f", ... +{len(items) - limit} more" if len(items) > limit else "")
    return f"{len(items)} {label} ({shown})"


def load_model(path: str | os.PathLike[str], config: str | ModelConfig | dict[str, Any] | None = None) -> nn.Module:
    """Build the graph a checkpoint holds and load its weights strictly; eval mode.

    The architecture comes from ``config`` if given, else from the checkpoint, else from
    the one registered config whose shapes match. A training-graph checkpoint gives the
    training graph, a folded one (``save_checkpoint`` of a reparameterized model) the
    folded graph.
    """
    from acfd_deploy.model.detector import build_model
    from acfd_deploy.reparam import reparameterize

    ckpt = read_checkpoint(path)
    state = ckpt.state_dict
    graph = ckpt.graph if ckpt.graph in (TRAIN_GRAPH, DEPLOY_GRAPH) else _guess_graph(state)
    if config is None and ckpt.config is not None:
        config = ckpt.config
    if config is None:
        matches = _matching_configs(state, graph)
        if len(matches) != 1:
            raise CheckpointError(
                f"{path} stores no config and its weights match {'none' if not matches else ' and '.join(matches)} of the "
                f"known configs ({', '.join(list_configs())}); pass the config explicitly"
            )
        config = matches[0]
    cfg = resolve_config(config)
    expected = _shapes_of(json.dumps(cfg.to_dict()), graph)
    missing, unexpected, misshaped = _mismatch(expected, state)
    if missing or unexpected or misshaped:
        parts = [
            _listing(label, items)
            for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped))
            if items
        ]
        hint = [n for n in _matching_configs(state, graph) if n != cfg.name]
        tail = f"; the weights match config {hint[0]!r}" if hint else ""
        raise CheckpointError(f"{path} does not fit {cfg.name} ({graph} graph): {'; '.join(parts)}{tail}")
    model = build_model(cfg)
    if graph == DEPLOY_GRAPH:
        model = reparameterize(model)
    model.load_state_dict(state, strict=True)
    return model.eval()
