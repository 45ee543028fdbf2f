"""The ONNX Runtime runner: the Runner interface, precision detection, the device
vocabulary, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import acfd_deploy
from acfd_deploy.calibrate import smooth_random_images
from acfd_deploy.errors import AcfdError
from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner, default_providers, precision_of
from acfd_deploy.runtime.torch_runner import TorchRunner
from acfd_deploy.verify.compare import tensor_diff
from acfd_deploy.verify.rules import FP32_TOL


@pytest.fixture(scope="module")
def onnx_file(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    proto = export_onnx(acfd_deploy.reparameterize(tiny_model), sample_size=(160, 224))
    set_metadata(proto, {"precision": "fp32"})
    return save_onnx(proto, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_runner_interface_and_parity(onnx_file: Path, tiny_model: torch.nn.Module) -> None:
    runner = OnnxRuntimeRunner(onnx_file, device="cpu")
    assert isinstance(runner, Runner)
    assert runner.precision == "fp32" and runner.name == "onnxruntime-cpu"
    x = smooth_random_images(2, 211, 299, seed=4).numpy()
    boxes, scores = runner.infer(x)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert tensor_diff(TorchRunner(tiny_model).infer(x), (boxes, scores)).ok(FP32_TOL, FP32_TOL)
    # a float64 or non-contiguous input is converted, not refused
    boxes2, _ = runner.infer(np.asfortranarray(x.astype(np.float64)))
    np.testing.assert_allclose(boxes2, boxes, rtol=1e-6, atol=1e-4)


def test_precision_from_metadata_then_name(tmp_path: Path, onnx_file: Path) -> None:
    assert precision_of(onnx_file) == "fp32"
    named = tmp_path / "x.int8.onnx"
    import onnx

    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    onnx.save(proto, str(named))
    assert precision_of(named) == "int8"


def test_runner_errors_are_clear(tmp_path: Path, onnx_file: Path) -> None:
    with pytest.raises(AcfdError, match="not found"):
        OnnxRuntimeRunner(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"definitely not onnx")
    with pytest.raises(AcfdError, match="cannot load"):
        OnnxRuntimeRunner(broken)
    with pytest.raises(AcfdError, match=r"\[B,3,H,W\]"):
        OnnxRuntimeRunner(onnx_file).infer(np.zeros((3, 160, 160), np.float32))


def test_a_missing_cuda_provider_is_bad_input_with_the_install_hint(onnx_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this machine's ONNX Runtime offers: its provider list is simulated as the
    CPU build's, so the check runs (and could fail) where onnxruntime-gpu is installed too."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(AcfdError, match=r"no CUDAExecutionProvider here .*acfd-deploy\[gpu\]"):
        OnnxRuntimeRunner(onnx_file, providers=["CUDAExecutionProvider"])
    with pytest.raises(AcfdError, match=r"no CUDAExecutionProvider .*acfd-deploy\[gpu\]"):
        OnnxRuntimeRunner(onnx_file, device="cuda")
    assert OnnxRuntimeRunner(onnx_file, device="auto").device.kind == "cpu"  # auto falls back to the CPU


def test_default_providers_prefer_cuda() -> None:
    assert default_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert default_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_device_cpu_is_the_cpu_provider_alone(onnx_file: Path) -> None:
    from acfd_deploy.runtime.onnx_runner import providers_for

    runner = OnnxRuntimeRunner(onnx_file, device="cpu")
    assert runner.session.get_providers() == ["CPUExecutionProvider"] and runner.name == "onnxruntime-cpu"
    # even where onnxruntime-gpu offers CUDA, cpu means the CPU provider only; cuda:N picks GPU N
    gpu_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cpu", gpu_build) == ["CPUExecutionProvider"]
    assert providers_for("auto", gpu_build) == gpu_build
    assert providers_for("cuda:1", gpu_build) == [("CUDAExecutionProvider", {"device_id": "1"}), "CPUExecutionProvider"]
    with pytest.raises(AcfdError, match=r"no CUDAExecutionProvider .*acfd-deploy\[gpu\]"):
        providers_for("cuda", ["CPUExecutionProvider"])


def test_an_onnx_file_that_is_not_a_detector_is_refused(tmp_path: Path) -> None:
    """A valid ONNX model without the boxes and scores outputs (someone else's model, or a
    graph cut short) is bad input when loaded, not an error on the first inference."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["images"], ["features"])],
        "not-acfd",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", 3, "h", "w"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    with pytest.raises(AcfdError, match="not an ACFD model: .*outputs boxes and scores, found .*'features'"):
        OnnxRuntimeRunner(path, device="cpu")


def test_the_runner_reports_the_contract_from_the_file(onnx_file: Path, tmp_path: Path) -> None:
    """device, min_size and pixel_mean come from the session and the file's metadata
    (acfd-export's ``input`` and ``config``), not from defaults: a file that says other
    values reads them back; one that says nothing gets the defaults."""
    import json

    import onnx

    from acfd_deploy.runtime.base import DEFAULT_MIN_SIZE, DEFAULT_PIXEL_MEAN

    runner = OnnxRuntimeRunner(onnx_file, device="cpu")
    assert runner.device.kind == "cpu" and str(runner.device) == "cpu"
    proto = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta["input"] = json.dumps({**json.loads(meta.get("input", "{}")), "min_side": 61})
    meta["config"] = json.dumps({**json.loads(meta.get("config", "{}")), "pixel_mean": [1.0, 2.0, 3.0]})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    other = tmp_path / "other.onnx"
    onnx.save(proto, str(other))
    told = OnnxRuntimeRunner(other, device="cpu")
    assert (told.min_size, told.pixel_mean) == (61, (1.0, 2.0, 3.0))
    del proto.metadata_props[:]
    silent = tmp_path / "silent.onnx"
    onnx.save(proto, str(silent))
    bare = OnnxRuntimeRunner(silent, device="cpu")
    assert (bare.min_size, bare.pixel_mean) == (DEFAULT_MIN_SIZE, DEFAULT_PIXEL_MEAN)
