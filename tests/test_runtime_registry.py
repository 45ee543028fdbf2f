"""One registry from a model reference to its runner, and one device vocabulary for every
backend (docs/design.md#the-runner-registry)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

import acfd_deploy
from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime import registry
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, parse_device, resolve_device
from acfd_deploy.runtime.registry import Backend, artifact_precision, backend_for, load_runner, register

# ---------------------------------------------------------------- the device vocabulary


@pytest.mark.parametrize(
    ("text", "kind", "index"),
    [("auto", "auto", 0), ("cpu", "cpu", 0), ("cuda", "cuda", 0), ("cuda:0", "cuda", 0), ("cuda:3", "cuda", 3), (" CUDA:1 ", "cuda", 1)],
)
def test_parse_device_accepts_the_vocabulary(text: str, kind: str, index: int) -> None:
    device = parse_device(text)
    assert (device.kind, device.index) == (kind, index)
    assert parse_device(device) is device  # already parsed: passed through


def test_parse_device_names_cuda_devices_fully() -> None:
    assert str(parse_device("cuda")) == "cuda:0" and str(parse_device("cuda:2")) == "cuda:2"
    assert str(parse_device("cpu")) == "cpu" and parse_device(None) == Device("auto")
    assert parse_device("cuda:2").torch() == "cuda:2" and parse_device("cpu").torch() == "cpu"
    with pytest.raises(ValueError, match="resolve an auto device"):
        parse_device("auto").torch()


@pytest.mark.parametrize("text", ["gpu", "mps", "0", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "auto:1", "cuda:0:1", "cuda 0"])
def test_parse_device_rejects_the_rest(text: str) -> None:
    with pytest.raises(AcfdError, match=r"unknown device .*; choose from auto, cpu, cuda, cuda:N"):
        parse_device(text)


def test_resolve_device_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from acfd_deploy.runtime import device

    monkeypatch.setattr(device, "_torch_gpus", lambda: (0, "torch sees no CUDA device"))
    assert resolve_device("auto") == Device("cpu") and resolve_device("cpu") == Device("cpu")
    with pytest.raises(AcfdError, match=r"no CUDA device is visible here \(torch sees no CUDA device\)"):
        resolve_device("cuda")
    monkeypatch.setattr(device, "_torch_gpus", lambda: (2, "torch sees 2 CUDA device(s)"))
    assert resolve_device("auto") == Device("cuda", 0) and resolve_device("cuda:1") == Device("cuda", 1)
    with pytest.raises(AcfdError, match=r"only 2 CUDA device\(s\) here \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2")


# ---------------------------------------------------------------- which backend runs what


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("m.pth", "torch"),
        ("m.pt", "torch"),
        ("m.safetensors", "torch"),
        ("m.onnx", "onnxruntime"),
        ("m.fp16.onnx", "onnxruntime"),
        ("m.plan", "tensorrt"),
        ("m.engine", "tensorrt"),
        ("M.ENGINE", "tensorrt"),
    ],
)
def test_suffixes_map_to_backends(name: str, backend: str) -> None:
    assert backend_for(name).name == backend
    assert backend_for(Path("/some/where") / name).name == backend


def test_an_unknown_suffix_lists_the_known_ones() -> None:
    with pytest.raises(AcfdError, match=r"unknown model type '\.xyz' for m\.xyz; expected one of (.+)") as info:
        backend_for("m.xyz")
    for suffix in (".pth", ".pt", ".safetensors", ".onnx", ".plan", ".engine"):
        assert suffix in str(info.value)
    with pytest.raises(AcfdError, match=r"model type '\(no suffix\)'"):
        backend_for("model")


def test_backend_selects_among_the_backends_that_accept_a_reference() -> None:
    assert backend_for("m.onnx", backend="onnxruntime").name == "onnxruntime"
    with pytest.raises(AcfdError, match=r"the tensorrt backend does not run m\.onnx"):
        backend_for("m.onnx", backend="tensorrt")
    with pytest.raises(AcfdError, match="unknown backend 'openvinox'; choose from torch, onnxruntime, tensorrt"):
        backend_for("m.onnx", backend="openvinox")


def test_a_url_with_an_unknown_scheme_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AcfdError, match=r"unknown URL scheme ftp:// for ftp://host/model"):
        backend_for("ftp://host/model")
    with pytest.raises(AcfdError, match=r"unknown URL scheme ftp://"):
        load_runner("ftp://host/model", device="cpu")


def test_load_runner_refuses_a_device_the_backend_cannot_use(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"not loaded: the device is refused first")
    for reference in (plan, tmp_path / "m.engine"):
        with pytest.raises(AcfdError, match=r"--device cpu: the tensorrt backend runs on cuda only"):
            load_runner(reference, device="cpu")
    with pytest.raises(AcfdError, match="unknown device"):
        load_runner(plan, device="tpu")


def test_load_runner_missing_or_bad_files_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(AcfdError, match="model file not found"):
        load_runner(tmp_path / "missing.onnx", device="cpu")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(AcfdError, match="model file: .* is not a file"):
        load_runner(tmp_path / "folder.onnx", device="cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(AcfdError):
        load_runner(garbage, device="cpu")


def test_a_checkpoint_runs_folded_in_pytorch(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    path = acfd_deploy.save_checkpoint(tiny_model, tmp_path / "tiny.pth")
    runner = load_runner(path, device="cpu")
    assert runner.precision == "fp32" and runner.name == "torch-cpu:tiny.pth"
    assert acfd_deploy.is_reparameterized(runner.model)  # type: ignore[attr-defined]
    assert artifact_precision(path) == "fp32"


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, dict]]:
    """A third-party backend registered for ``.fake`` files and ``fake://`` URLs; the
    registry is restored afterwards."""
    calls: list[tuple[object, dict]] = []
    module = types.ModuleType("fake_acfd_backend")

    class FakeRunner(Runner):
        name, precision = "fake", "fp32"

        def __init__(self, reference: object, device: Device, **options: object) -> None:
            calls.append((reference, {"device": device, **options}))

    module.FakeRunner = FakeRunner  # type: ignore[attr-defined]
    module.precision_of = lambda reference: "bf16"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_acfd_backend", module)
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    register(
        Backend(
            "fake",
            "fake_acfd_backend:FakeRunner",
            suffixes=(".fake", ".onnx"),
            schemes=("fake",),
            devices=("cpu",),
            precision="fake_acfd_backend:precision_of",
            batch_options=(("mode", "throughput"),),
        )
    )
    return calls


def test_a_registered_backend_is_reached_by_suffix_scheme_and_name(fake_backend: list, tmp_path: Path) -> None:
    model = tmp_path / "m.fake"
    model.write_bytes(b"x")
    runner = load_runner(model, device="cpu", threads=3)
    assert runner.name == "fake" and fake_backend[-1] == (model, {"device": Device("cpu"), "threads": 3})
    assert runner.backend == "fake"  # the registry says which backend made it
    # the record's batch options, for batches above one image; the caller's own options win
    load_runner(model, device="cpu", batch=4)
    assert fake_backend[-1] == (model, {"device": Device("cpu"), "mode": "throughput"})
    load_runner(model, device="cpu", batch=4, mode="latency")
    assert fake_backend[-1] == (model, {"device": Device("cpu"), "mode": "latency"})
    load_runner("fake://server:8000/acfd", device="cpu")
    assert fake_backend[-1] == ("fake://server:8000/acfd", {"device": Device("cpu")})
    with pytest.raises(AcfdError, match="the fake backend runs on cpu only"):
        load_runner(model, device="cuda")
    # a second backend for .onnx is reached by name; the first registered stays the default
    assert backend_for("m.onnx").name == "onnxruntime" and backend_for("m.onnx", backend="fake").name == "fake"
    assert artifact_precision(model) == "bf16"


def test_close_is_safe_twice_and_on_a_half_made_runner() -> None:
    """The contract: close() may be called more than once, and on a runner whose __init__
    failed before it held anything (what a `with` block or a server's finalize does)."""
    from acfd_deploy.resources import demo_weights
    from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner
    from acfd_deploy.runtime.triton_runner import TritonRunner

    for cls in (TensorRTRunner, TritonRunner, Runner):
        half_made = cls.__new__(cls)
        half_made.close()
        half_made.close()
    with load_runner(demo_weights(), device="cpu") as runner:
        assert runner.backend == "torch" and runner.device == Device("cpu")
    runner.close()  # after the with block closed it
