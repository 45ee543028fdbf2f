"""The OpenVINO backend: runner (ONNX and IR), IR writer, pinned inference precision.

On the bundled demo model (trained weights: scores spread over (0, 1), boxes off their
anchors), at 296x360 (not square, not a multiple of 128) with batch 2, against ONNX
Runtime on the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

import acfd_deploy  # noqa: E402
from acfd_deploy.data.synth import synthetic_batch  # noqa: E402
from acfd_deploy.errors import AcfdError  # noqa: E402
from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata  # noqa: E402
from acfd_deploy.export.openvino import constant_types, write_ir  # noqa: E402
from acfd_deploy.resources import demo_weights  # noqa: E402
from acfd_deploy.runtime.base import Runner  # noqa: E402
from acfd_deploy.runtime.openvino_model import (
    cpu_supports_bf16,  # noqa: E402
    read_ir_metadata,  # noqa: E402
)
from acfd_deploy.runtime.openvino_profile import layer_breakdown  # noqa: E402
from acfd_deploy.runtime.openvino_runner import OpenVinoRunner  # noqa: E402
from acfd_deploy.verify import compare as parity  # noqa: E402
from acfd_deploy.verify.rules import FP16_MIN_MATCH, FP32_TOL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = demo_weights()
SIZE = (296, 360)
# min_side and pixel_mean are not the defaults, so the runner contract test sees them read back
META = {
    "config_name": "acfd-tiny",
    "input": '{"name": "images", "layout": "NCHW <RGB> & 0..255", "min_side": 131}',
    "config": '{"pixel_mean": [120.0, 115.0, 100.0]}',
    "producer": "tests",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo model as ONNX fp32 and int8 (Q/DQ, 4 calibration scenes) and as IR."""
    pytest.importorskip("onnxruntime")
    from acfd_deploy.export.int8 import quantize_int8

    out = tmp_path_factory.mktemp("openvino")
    folded = acfd_deploy.reparameterize(acfd_deploy.load_model(DEMO))
    proto = export_onnx(folded, sample_size=(160, 224))
    set_metadata(proto, {**META, "precision": "fp32"})
    paths = {"fp32": save_onnx(proto, out / "demo.onnx")}
    calib = [synthetic_batch(1, 256, 320, seed=11, first=i) for i in range(4)]
    q, _ = quantize_int8(proto, calib)
    set_metadata(q, {**META, "precision": "int8"})
    paths["int8"] = save_onnx(q, out / "demo.int8.onnx")
    q, _ = quantize_int8(proto, calib, placement="openvino")
    set_metadata(q, {**META, "precision": "int8"})
    paths["int8_ov"] = save_onnx(q, out / "demo.int8-openvino.onnx")
    paths["fp32_ir"] = write_ir(paths["fp32"], out / "ir" / "demo.xml")[0]
    paths["int8_ir"] = write_ir(paths["int8"], out / "ir" / "demo.int8.xml")[0]
    return paths


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return synthetic_batch(2, *SIZE, seed=3)


@pytest.fixture(scope="module")
def ort_outputs(files: dict[str, Path], images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner

    return {p: OnnxRuntimeRunner(files[p], providers=["CPUExecutionProvider"]).infer(images) for p in ("fp32", "int8")}


@pytest.mark.parametrize("kind", ["fp32", "fp32_ir"])
def test_fp32_matches_onnxruntime_at_tensor_level(kind: str, files: dict[str, Path], images: np.ndarray, ort_outputs: dict) -> None:
    runner = OpenVinoRunner(files[kind])
    assert isinstance(runner, Runner)
    assert (runner.precision, runner.inference_precision, runner.name) == ("fp32", "f32", "openvino-cpu-fp32")
    boxes, scores = runner.infer(images)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and boxes.shape[0] == 2
    diff = parity.tensor_diff(ort_outputs["fp32"], (boxes, scores))
    assert diff.ok(1e-4, 1e-4), diff
    assert parity.detection_match(ort_outputs["fp32"], (boxes, scores)).reference > 50  # a real comparison


def test_shapes_change_between_calls(files: dict[str, Path]) -> None:
    """One compiled dynamic model serves every batch and size (no recompilation), down to
    the small sizes where a ceil-mode max-pool sees a 2-pixel map (pad_ceil_maxpools)."""
    from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner

    runner, ort = OpenVinoRunner(files["fp32_ir"]), OnnxRuntimeRunner(files["fp32"], providers=["CPUExecutionProvider"])
    for batch, h, w in [(1, 200, 264), (3, 160, 416), (1, 130, 141), (1, 200, 264)]:
        x = synthetic_batch(batch, h, w, seed=h)
        assert parity.tensor_diff(ort.infer(x), runner.infer(x)).ok(FP32_TOL, FP32_TOL)


def test_static_shapes_compile_per_shape(files: dict[str, Path]) -> None:
    from acfd_deploy.runtime import openvino_runner

    dynamic, static = OpenVinoRunner(files["fp32_ir"]), OpenVinoRunner(files["fp32_ir"], static_shapes=True)
    shapes = [(1, 200, 264), (2, 160, 416), (1, 200, 264)] + [(1, 160 + 8 * i, 224) for i in range(openvino_runner.STATIC_CACHE)]
    for batch, h, w in shapes:
        x = synthetic_batch(batch, h, w, seed=h)
        assert parity.tensor_diff(dynamic.infer(x), static.infer(x)).ok(FP32_TOL, FP32_TOL)
    assert len(static._static) == openvino_runner.STATIC_CACHE and static.describe()["static_shapes"]


def test_throughput_mode_splits_a_batch_over_streams(files: dict[str, Path], ort_outputs: dict) -> None:
    """Two streams (asked for, so the test does not depend on this machine's cores): a
    batch of 3 runs as sub-batches of 2 and 1 on two requests at once, and comes back in
    order, equal to the latency mode's single request."""
    images = synthetic_batch(3, *SIZE, seed=3)
    runner = OpenVinoRunner(files["fp32_ir"], mode="throughput", streams=2, threads=2)
    assert (runner.mode, runner.streams) == ("throughput", 2) and runner.num_requests >= 2
    boxes, scores = runner.infer(images)
    ran = sorted(int(r.get_tensor("scores").shape[0]) for r in runner._requests)
    assert sum(ran) == 3 and ran[-1] < 3, f"the batch was not split over the requests: {ran}"
    whole = OpenVinoRunner(files["fp32_ir"], mode="latency", threads=2).infer(images)
    assert parity.tensor_diff(whole, (boxes, scores)).ok(FP32_TOL, FP32_TOL)  # the sub-batches in order
    assert parity.tensor_diff(ort_outputs["fp32"], (boxes[:2], scores[:2])).ok(FP32_TOL, FP32_TOL)
    with pytest.raises(AcfdError, match="only the throughput mode"):
        OpenVinoRunner(files["fp32_ir"], mode="latency", streams=2)


def test_bf16_finds_the_reference_detections_again(files: dict[str, Path], images: np.ndarray, ort_outputs: dict) -> None:
    ok, why = cpu_supports_bf16()
    if not ok:
        pytest.skip(f"no native bf16 here: {why}")
    runner = OpenVinoRunner(files["fp32_ir"], precision="bf16")
    assert (runner.precision, runner.inference_precision, runner.name) == ("bf16", "bf16", "openvino-cpu-bf16")
    match = parity.detection_match(ort_outputs["fp32"], runner.infer(images))
    assert match.reference > 50 and match.rate >= FP16_MIN_MATCH, match


@pytest.mark.parametrize("kind", ["int8", "int8_ir"])
def test_int8_matches_onnxruntime_int8(kind: str, files: dict[str, Path], images: np.ndarray, ort_outputs: dict) -> None:
    """From the .onnx too: OpenVINO's Core.read_model of this Q/DQ file gives wrong outputs
    at dynamic sizes, so the runner converts ONNX with convert_model (see read_model)."""
    runner = OpenVinoRunner(files[kind])
    assert (runner.precision, runner.inference_precision, runner.name) == ("int8", "f32", "openvino-cpu-int8")
    match = parity.detection_match(ort_outputs["int8"], runner.infer(images))
    assert match.reference > 50 and match.rate >= 0.9, match


def _conv_kernels(runner: OpenVinoRunner) -> dict[str, int]:
    """Convolutions per kernel precision, from OpenVINO's performance counters."""
    breakdown = layer_breakdown(runner.profile(synthetic_batch(1, *SIZE, seed=5)))
    return {row["precision"]: row["layers"] for row in breakdown["by_type"] if row["type"] == "Convolution"}


def test_int8_runs_convolutions_in_int8(files: dict[str, Path]) -> None:
    conv = _conv_kernels(OpenVinoRunner(files["int8_ir"], profile=True))
    predictions = 12  # two prediction convs per pyramid level, kept fp32 by ONNX Runtime's placement
    assert conv == {"int8": sum(conv.values()) - predictions, "fp32": predictions}, conv


def test_openvino_placement_runs_every_convolution_in_int8(files: dict[str, Path], images: np.ndarray, ort_outputs: dict) -> None:
    """The prediction convs take int8 inputs and weights; their outputs stay fp32."""
    import onnx

    from acfd_deploy.export.graph import conv_weight_dtypes, prediction_convs

    proto = onnx.load(str(files["int8_ov"]))
    assert set(conv_weight_dtypes(proto)) == {"int8"}
    predictions = set(prediction_convs(proto.graph))
    outputs = {n.output[0] for n in proto.graph.node if n.name in predictions}
    assert len(outputs) == 12 and not [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in outputs]
    runner = OpenVinoRunner(files["int8_ov"], profile=True)
    conv = _conv_kernels(runner)
    assert set(conv) == {"int8"}, conv
    match = parity.detection_match(ort_outputs["int8"], runner.infer(images))
    assert match.rate >= 0.9, match
    from acfd_deploy.export.int8 import quantize_int8

    with pytest.raises(AcfdError, match="placement"):
        quantize_int8(proto, [images[:1]], placement="tensorrt")


def test_ir_metadata_round_trips_and_weights_stay_fp32(files: dict[str, Path]) -> None:
    import openvino as ov

    meta = read_ir_metadata(files["fp32_ir"])
    assert meta == {**META, "precision": "fp32"}  # special characters survive the XML
    assert read_ir_metadata(files["int8_ir"])["precision"] == "int8"
    saved = constant_types(ov.Core().read_model(str(files["fp32_ir"])))
    assert "f16" not in saved and saved == constant_types(ov.convert_model(str(files["fp32"])))
    # fp32 weights take as many bytes in the .bin as in the ONNX file (fp16 would halve them)
    assert files["fp32_ir"].with_suffix(".bin").stat().st_size > 0.9 * files["fp32"].stat().st_size
    assert not list(files["fp32_ir"].parent.glob(".*"))  # no temporary files left behind


def test_write_ir_takes_explicit_metadata_and_precision_comes_from_it(files: dict[str, Path], tmp_path: Path) -> None:
    xml, bin_ = write_ir(files["fp32"], tmp_path / "x.xml", {"precision": "fp32", "config_name": "other"})
    assert bin_ == tmp_path / "x.bin" and bin_.is_file()
    assert read_ir_metadata(xml) == {"precision": "fp32", "config_name": "other"}
    with pytest.raises(AcfdError, match="strings"):
        write_ir(files["fp32"], tmp_path / "y.xml", {"precision": 1})  # type: ignore[dict-item]


def test_precision_hint_is_pinned(files: dict[str, Path]) -> None:
    runner = OpenVinoRunner(files["int8_ir"])
    assert runner.config["INFERENCE_PRECISION_HINT"] == "f32" and runner.inference_precision == "f32"
    assert runner.describe()["inference_precision_hint"] == "f32"
    with pytest.raises(AcfdError, match="int8 artifact, not fp32"):
        OpenVinoRunner(files["int8_ir"], precision="fp32")
    if cpu_supports_bf16()[0]:  # an int8 file with bf16 asked for: int8 convs, bf16 for the rest
        both = OpenVinoRunner(files["int8_ir"], precision="bf16")
        assert (both.precision, both.inference_precision, both.name) == ("int8", "bf16", "openvino-cpu-int8-bf16")


def _one_line_error(excinfo: pytest.ExceptionInfo[AcfdError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and len(message) < 300, message
    return message


def test_errors_are_one_clear_line(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(AcfdError, match="not found") as e:
        OpenVinoRunner(tmp_path / "missing.xml")
    _one_line_error(e)
    truncated = tmp_path / "truncated.xml"
    truncated.write_text(files["fp32_ir"].read_text())
    truncated.with_suffix(".bin").write_bytes(files["fp32_ir"].with_suffix(".bin").read_bytes()[:1000])
    with pytest.raises(AcfdError, match="cannot read") as e:
        OpenVinoRunner(truncated)
    _one_line_error(e)
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(files["fp32_ir"].read_text())
    with pytest.raises(AcfdError, match="lonely.bin is missing") as e:
        OpenVinoRunner(lonely)
    _one_line_error(e)
    for name, content in [("broken.onnx", b"definitely not onnx"), ("broken.xml", b"<net><layers>")]:
        bad = tmp_path / name
        bad.write_bytes(content)
        bad.with_suffix(".bin").write_bytes(b"")
        with pytest.raises(AcfdError, match="cannot read") as e:
            OpenVinoRunner(bad)
        _one_line_error(e)
    with pytest.raises(AcfdError, match="'cpu' only") as e:
        OpenVinoRunner(files["fp32_ir"], device="cuda")
    _one_line_error(e)
    with pytest.raises(AcfdError, match=r"\[B,3,H,W\]"):
        OpenVinoRunner(files["fp32_ir"]).infer(np.zeros((3, 160, 160), np.float32))
    with pytest.raises(AcfdError, match="not found"):
        write_ir(tmp_path / "missing.onnx", tmp_path / "m.xml")


def test_cpu_supports_bf16_gives_a_reason() -> None:
    ok, why = cpu_supports_bf16()
    assert isinstance(ok, bool) and why


@pytest.mark.slow
def test_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    """benchmarks/bench_cpu_backends.py --quick (acfd-tiny, small images): the script
    works end to end and writes its table and JSON."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_cpu_backends.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "cpu_backends.json").read_text())
    b2 = doc["models"]["tiny"]["batches"]["2"]
    assert {"ONNX Runtime fp32", "OpenVINO fp32", "OpenVINO int8", "OpenVINO fp32 throughput"} <= set(b2["median_ms"])
    assert b2["outputs_vs_onnxruntime_fp32"]["OpenVINO fp32"]["score_abs"] <= 1e-4
    assert "| OpenVINO int8 |" in (tmp_path / "cpu_backends.md").read_text()


@pytest.mark.parametrize("kind", ["fp32", "fp32_ir"])
def test_the_runner_contract_comes_from_the_file(kind: str, files: dict[str, Path]) -> None:
    """min_size and pixel_mean from acfd-export's metadata (an ONNX file's metadata_props,
    an IR's rt_info), device the CPU; close() twice is harmless."""
    from acfd_deploy.runtime.device import Device

    runner = OpenVinoRunner(files[kind])
    assert (runner.min_size, runner.pixel_mean, runner.device) == (131, (120.0, 115.0, 100.0), Device("cpu"))
    runner.close()
    runner.close()
