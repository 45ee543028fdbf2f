"""Checkpoint forms, strict loading, and files that must be refused (docs/design.md#public-contracts)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import acfd_deploy
from acfd_deploy.calibrate import smooth_random_images
from acfd_deploy.errors import CheckpointError, ConfigError


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    images = smooth_random_images(2, 150, 170, seed=9)
    with torch.no_grad():
        (ba, sa), (bb, sb) = a.eval()(images), b.eval()(images)
    return torch.equal(ba, bb) and torch.equal(sa, sb)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_and_load_training_graph(tmp_path: Path, tiny_model: nn.Module, suffix: str) -> None:
    path = acfd_deploy.save_checkpoint(tiny_model, tmp_path / f"m{suffix}")
    loaded = acfd_deploy.load_model(path)
    assert not acfd_deploy.is_reparameterized(loaded) and not loaded.training
    assert loaded.config == tiny_model.config
    assert _same_outputs(tiny_model, loaded)
    assert not list(tmp_path.glob(".*partial")), "no temporary file may remain"
    assert path.stat().st_mode & 0o044 == 0o044, "artifacts must be readable by other users (servers)"


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_save_and_load_folded_graph(tmp_path: Path, tiny_model: nn.Module, suffix: str) -> None:
    folded = acfd_deploy.reparameterize(tiny_model)
    loaded = acfd_deploy.load_model(acfd_deploy.save_checkpoint(folded, tmp_path / f"m.deploy{suffix}"))
    assert acfd_deploy.is_reparameterized(loaded)
    assert _same_outputs(folded, loaded)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,  # bare state_dict, config inferred from the shapes
        lambda s: {"state_dict": s},
        lambda s: {"model": s, "config": "acfd-tiny", "epoch": 3},
        lambda s: {"model": {f"module.{k}": v for k, v in s.items()}},  # DDP
        lambda s: {"state_dict": {f"_orig_mod.{k}": v for k, v in s.items()}},  # torch.compile
    ],
    ids=["bare", "state_dict", "model+config", "ddp-prefix", "compile-prefix"],
)
def test_checkpoint_forms(tmp_path: Path, tiny_model: nn.Module, wrap) -> None:
    path = tmp_path / "w.pth"
    torch.save(wrap(_state(tiny_model)), path)
    assert _same_outputs(tiny_model, acfd_deploy.load_model(path))


def test_safetensors_without_metadata_infers_config(tmp_path: Path, tiny_model: nn.Module) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _state(tiny_model).items()}, str(path))
    assert _same_outputs(tiny_model, acfd_deploy.load_model(path))


def test_explicit_config_overrides_stored_one(tmp_path: Path, tiny_model: nn.Module) -> None:
    path = tmp_path / "w.pth"
    torch.save({"model": _state(tiny_model), "config": "acfd-vovnetv3-51"}, path)
    with pytest.raises(CheckpointError, match="does not fit acfd-vovnetv3-51.*match config 'acfd-tiny'"):
        acfd_deploy.load_model(path)
    assert _same_outputs(tiny_model, acfd_deploy.load_model(path, config="acfd-tiny"))


def test_mismatch_names_missing_unexpected_and_misshaped_keys(tmp_path: Path, tiny_model: nn.Module) -> None:
    state = _state(tiny_model)
    del state["head.cls.bias"]
    state["head.extra.weight"] = torch.zeros(1)
    state["head.reg.weight"] = torch.zeros(4, 7, 3, 3)
    path = tmp_path / "w.pth"
    torch.save({"model": state, "config": "acfd-tiny"}, path)
    with pytest.raises(CheckpointError) as info:
        acfd_deploy.load_model(path)
    message = str(info.value)
    assert "1 missing keys (head.cls.bias)" in message
    assert "1 unexpected keys (head.extra.weight)" in message
    assert "head.reg.weight (file [4, 7, 3, 3], model [4, 32, 3, 3])" in message
    assert "\n" not in message


def test_unknown_stored_config(tmp_path: Path, tiny_model: nn.Module) -> None:
    path = tmp_path / "w.pth"
    torch.save({"model": _state(tiny_model), "config": "acfd-nope"}, path)
    with pytest.raises(ConfigError, match="unknown model config 'acfd-nope'"):
        acfd_deploy.load_model(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not a checkpoint\n"), "not a PyTorch checkpoint"),
        (lambda p: p.write_bytes(bytes(range(256)) * 12), "not a PyTorch checkpoint"),
        (lambda p: torch.save([1, 2, 3], p), "holds a list"),
        (lambda p: torch.save({"epoch": 1, "lr": 0.1}, p), "no state_dict of tensors"),
        (lambda p: p.mkdir(), "not a file"),
    ],
    ids=["missing", "empty", "text", "garbage", "list", "no-tensors", "directory"],
)
def test_bad_files(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "w.pth"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        acfd_deploy.load_model(path)


def test_truncated_checkpoint(tmp_path: Path, tiny_model: nn.Module) -> None:
    path = acfd_deploy.save_checkpoint(tiny_model, tmp_path / "w.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint or is truncated"):
        acfd_deploy.load_model(path)
    st = acfd_deploy.save_checkpoint(tiny_model, tmp_path / "w.safetensors")
    st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        acfd_deploy.load_model(st)


class _Exploit:
    """Unpickling this runs os.system: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_does_not_run_code(tmp_path: Path, tiny_model: nn.Module) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": _state(tiny_model), "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        acfd_deploy.load_model(path)
    assert not marker.exists()
    # the same payload in a plain pickle file (not a torch zip)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        acfd_deploy.load_model(raw)
    assert not marker.exists()
