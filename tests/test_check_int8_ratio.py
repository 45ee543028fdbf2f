"""The int8 ratio guard's pure parts (benchmarks/check_int8_ratio.py): ratio arithmetic,
the verdicts, the floors file and argument checks. Its timings are benchmark figures
(benchmarks/results/int8_ratio.md), never a timed test."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from acfd_deploy.export.graph import global_pools_to_gap

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def guard() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_int8_ratio", ROOT / "benchmarks" / "check_int8_ratio.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ratios_pair_each_round_with_the_same_rounds_reference(guard: ModuleType) -> None:
    times = {guard.REFERENCE: [900.0, 1800.0, 1000.0], "ONNX Runtime int8": [300.0, 900.0, 400.0]}
    assert guard.round_ratios(times) == {"ONNX Runtime int8": [3.0, 2.0, 2.5]}


def test_judge_uses_the_median_round_and_fails_below_the_floor(guard: ModuleType) -> None:
    floors = {"onnxruntime_int8": 2.5, "openvino_int8": 3.0}
    ratios = {"ONNX Runtime int8": [2.4, 2.6, 9.0], "OpenVINO int8": [2.9, 2.95, 3.5]}
    rows, passed = guard.judge(ratios, floors)
    assert [(r["check"], r["median_ratio"], r["verdict"]) for r in rows] == [
        ("onnxruntime_int8", 2.6, "pass"),
        ("openvino_int8", 2.95, "FAIL"),
    ]
    assert not passed


def test_judge_says_n_a_for_an_untimed_artifact_and_never_passes_on_nothing(guard: ModuleType) -> None:
    floors = {"onnxruntime_int8": 2.0, "openvino_int8": 3.0}
    rows, passed = guard.judge({"ONNX Runtime int8": [2.1, 2.2, 2.3]}, floors)
    assert [r["verdict"] for r in rows] == ["pass", "n/a"] and passed
    rows, passed = guard.judge({}, floors)
    assert [r["verdict"] for r in rows] == ["n/a", "n/a"] and not passed


def test_machine_classes(guard: ModuleType) -> None:
    assert guard.machine_class({"avx512f", "avx512_vnni", "amx_int8"}) == "x86-amx"
    assert guard.machine_class({"avx2", "avx_vnni"}) == "x86-vnni"
    assert guard.machine_class({"avx2"}) == "other"


def test_the_committed_floors_load_and_a_bad_file_is_bad_input(guard: ModuleType, tmp_path: Path) -> None:
    for machine in ("x86-amx", "x86-vnni"):
        floors = guard.load_floors(guard.FLOORS, machine)
        assert set(floors) == {"onnxruntime_int8", "openvino_int8"} and all(v > 1.0 for v in floors.values())
    with pytest.raises(guard.BadInput, match="no floors for machine class 'other'"):
        guard.load_floors(guard.FLOORS, "other")
    bad = tmp_path / "floors.json"
    bad.write_text(json.dumps({"machine_classes": {"x86-amx": {"floors": {"onnxruntime_int8": 2.0, "openvino_int8": "fast"}}}}))
    with pytest.raises(guard.BadInput, match="openvino_int8 must be a positive number"):
        guard.load_floors(bad, "x86-amx")
    with pytest.raises(guard.BadInput, match="cannot read"):
        guard.load_floors(tmp_path / "missing.json", "x86-amx")


def test_arguments(guard: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = guard.parse_args(["--export-dir", str(tmp_path), "--rounds", "5"])
    assert args.export_dir == tmp_path and args.rounds == 5 and args.threads == 2
    for bad in (["--rounds", "2"], ["--threads", "0"], ["--imgsz", "64", "64"], ["--export-dir", "a", "--keep-export", "b"]):
        with pytest.raises(SystemExit) as exc:
            guard.parse_args(bad)
        assert exc.value.code == 2
    with pytest.raises(guard.BadInput, match="expected one STEM.int8.onnx"):
        guard.find_export(tmp_path)


def _pool_graph() -> onnx.ModelProto:
    """x -> ReduceMean over (H, W) (the eSE squeeze), over (W, H) by negative axes, over C,
    and over (H, W) without keepdims: only the first two are global average pools."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["hw"], name="hw", axes=[2, 3], keepdims=1),
        helper.make_node("ReduceMean", ["x"], ["neg"], name="neg", axes=[-1, -2], keepdims=1),
        helper.make_node("ReduceMean", ["x"], ["c"], name="c", axes=[1], keepdims=1),
        helper.make_node("ReduceMean", ["x"], ["flat"], name="flat", axes=[-2, -1], keepdims=0),
        helper.make_node("Mul", ["x", "hw"], ["y"], name="scale"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 5, "h", "w"])
    shapes = {"y": ["b", 5, "h", "w"], "neg": ["b", 5, 1, 1], "c": ["b", 1, "h", "w"], "flat": ["b", 5]}
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in shapes.items()]
    return helper.make_model(helper.make_graph(nodes, "pools", [x], outs), opset_imports=[helper.make_opsetid("", 17)])


def test_only_the_spatial_mean_with_kept_dims_becomes_global_average_pool() -> None:
    model = _pool_graph()
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 9)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert global_pools_to_gap(model) == 2
    assert [n.op_type for n in model.graph.node] == ["GlobalAveragePool", "GlobalAveragePool", "ReduceMean", "ReduceMean", "Mul"]
    onnx.checker.check_model(model, full_check=True)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
