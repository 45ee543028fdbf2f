"""One device answer (acfd_deploy.runtime.device.cuda_status) for every backend, asked by
the registry, export, bench and serve alike. The libraries' answers are simulated (a
CPU-only torch on a machine whose CUDA runtime sees a GPU, with TensorRT installed), not
the GPU: the point is that no consumer asks torch where TensorRT is meant."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from acfd_deploy.bench.run import torch_device
from acfd_deploy.bench.targets import TorchOptions, targets_for_export_dir
from acfd_deploy.errors import AcfdError
from acfd_deploy.export.exporter import tensorrt_plan
from acfd_deploy.export.options import ExportOptions
from acfd_deploy.manifest import MANIFEST_NAME, MANIFEST_VERSION
from acfd_deploy.runtime import device
from acfd_deploy.runtime.device import CUDA_RUNTIME, Device, cuda_status, resolve_device
from acfd_deploy.serve import server


@pytest.fixture
def cpu_torch_on_a_gpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch is a CPU-only build; the CUDA runtime sees one GPU; TensorRT and Polygraphy
    are installed; ONNX Runtime is the CPU build."""
    monkeypatch.setattr(device, "_torch_gpus", lambda: (0, "this torch is a CPU-only build"))
    monkeypatch.setattr(device, "_cudart_gpus", lambda: (1, "the CUDA runtime sees 1 device(s)"))
    monkeypatch.setattr(device, "_installed", lambda name: name in ("tensorrt", "polygraphy"))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0"))
    fake_ort = types.SimpleNamespace(get_available_providers=lambda: ["CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", fake_ort)


def test_each_backend_gets_its_own_answer(cpu_torch_on_a_gpu_machine: None) -> None:
    torch_answer = cuda_status("torch")
    assert (torch_answer.usable, torch_answer.count) == (False, 0) and "CPU-only" in torch_answer.reason
    trt = cuda_status("tensorrt")
    assert (trt.usable, trt.count) == (True, 1) and "10.9.0" in trt.reason
    ort = cuda_status("onnxruntime")
    assert not ort.usable and "no CUDAExecutionProvider" in ort.reason and "acfd-deploy[gpu]" in ort.reason
    assert not cuda_status("openvino").usable
    assert cuda_status(CUDA_RUNTIME).usable  # the Triton server process can use the GPU
    assert server.has_gpu() is True
    # auto resolves per backend: the GPU for TensorRT, the CPU for PyTorch
    assert resolve_device("auto", backend="tensorrt") == Device("cuda", 0)
    assert resolve_device("auto") == Device("cpu")
    with pytest.raises(AcfdError, match=r"--device cuda:0: no CUDA device is visible here \(this torch is a CPU-only build\)"):
        resolve_device("cuda")
    with pytest.raises(AcfdError, match=r"only 1 CUDA device\(s\) here"):
        resolve_device("cuda:1", backend="tensorrt")


def test_export_builds_and_verifies_plans_on_the_gpu(cpu_torch_on_a_gpu_machine: None) -> None:
    """The bug: plans were built (TensorRT's answer) and then verified on "cpu" (torch's)."""
    build, note, where = tensorrt_plan(ExportOptions(device="auto"))
    assert (build, where) == (True, "cuda:0") and note == "TensorRT 10.9.0: building engines"
    assert tensorrt_plan(ExportOptions(device="cpu"))[::2] == (False, "cpu")
    assert tensorrt_plan(ExportOptions(engine="onnx"))[::2] == (False, "cpu")


def test_export_skips_plans_without_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_installed", lambda name: False)
    build, note, where = tensorrt_plan(ExportOptions(device="auto"))
    assert (build, where) == (False, "cpu") and note.startswith("TensorRT: skipped (tensorrt is not installed")


def _export_folder(folder: Path) -> Path:
    """An export.json that lists a TensorRT plan (the files are placeholders: listing a
    target loads nothing)."""
    folder.mkdir()
    plan = folder / "m.fp32.plan"
    plan.write_bytes(b"not a real engine")
    artifact = {"name": "TensorRT fp32", "kind": "tensorrt", "backend": "tensorrt", "precision": "fp32", "path": plan.name}
    manifest = {"manifest_version": MANIFEST_VERSION, "weights": {"source": "random"}, "artifacts": [artifact]}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return folder


def test_bench_lists_a_plan_where_tensorrt_runs(cpu_torch_on_a_gpu_machine: None, tmp_path: Path) -> None:
    """acfd-bench --device auto: PyTorch runs on the CPU, the plan on the GPU (listed),
    where the torch-only answer skipped the plan as "a plan on a CPU run"."""
    folder = _export_folder(tmp_path / "out")
    found, _ = targets_for_export_dir(folder, TorchOptions(device="cpu", artifact_device="auto"))
    assert [(t.backend, t.path) for t in found] == [("tensorrt", folder / "m.fp32.plan")]
    skipped, _ = targets_for_export_dir(folder, TorchOptions(device="cpu", artifact_device="cpu"))
    assert skipped == []


def test_bench_runs_artifacts_on_the_gpu_beside_a_cpu_only_torch(cpu_torch_on_a_gpu_machine: None) -> None:
    """--device cuda: PyTorch cannot run there (refused, with torch's reason, only if a
    PyTorch target is asked for); the plan runs on the GPU; the matmul reference on the CPU."""
    where, refused = torch_device("cuda")
    assert where == "cpu" and refused is not None and "CPU-only" in str(refused)
    assert torch_device("auto") == ("cpu", None) and torch_device("cpu") == ("cpu", None)


def test_bench_refuses_cuda_where_nothing_can_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_torch_gpus", lambda: (0, "torch sees no CUDA device"))
    monkeypatch.setattr(device, "_installed", lambda name: False)
    monkeypatch.setitem(sys.modules, "onnxruntime", types.SimpleNamespace(get_available_providers=lambda: ["CPUExecutionProvider"]))
    with pytest.raises(AcfdError, match="no CUDA device is visible here"):
        torch_device("cuda")
