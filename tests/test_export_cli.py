"""acfd-export end to end on acfd-tiny (well-conditioned weights), through the command.

One export (fp32 + fp16 + int8, batch 2, a non-square size that is no multiple of 128)
is made once per session; the tests then check what it wrote and how its artifacts
behave at other sizes and batches than the ones it was made at.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import acfd_deploy
from acfd_deploy.cli.export import main
from acfd_deploy.export.graph import conv_weight_dtypes
from acfd_deploy.export.onnx_export import read_metadata
from acfd_deploy.fileio import sha256_file
from acfd_deploy.manifest import MANIFEST_VERSION, check_folder
from acfd_deploy.model.anchors import num_anchors
from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner
from acfd_deploy.runtime.torch_runner import TorchRunner
from acfd_deploy.verify.compare import detection_match, tensor_diff
from acfd_deploy.verify.rules import FP16_MIN_MATCH, FP32_TOL, INT8_MIN_MATCH
from tests.helpers import realistic, write_calib

IMGSZ = (200, 264)
STEM = "tiny"
ARTIFACTS = (f"{STEM}.onnx", f"{STEM}.fp16.onnx", f"{STEM}.int8.onnx", f"{STEM}.deploy.pt", "export.json")


@pytest.fixture(scope="session")
def weights(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return acfd_deploy.save_checkpoint(tiny_model, tmp_path_factory.mktemp("weights") / f"{STEM}.pth")


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_calib(tmp_path_factory.mktemp("calib"))


@pytest.fixture(scope="session")
def exported(weights: Path, calib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("export")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(
            ["--weights", str(weights), "--fp16", "--int8", "--calib", str(calib_dir), "--imgsz", *map(str, IMGSZ),
             "--batch", "2", "--engine", "auto", "--out", str(out)]
        )  # fmt: skip
    return {"rc": rc, "out": out, "stdout": buf.getvalue(), "manifest": json.loads((out / "export.json").read_text())}


def test_export_succeeds_and_prints_the_table(exported: dict) -> None:
    assert exported["rc"] == 0, exported["stdout"]
    text = exported["stdout"]
    for row in ("PyTorch folded", "ONNX fp32", "ONNX fp16", "ONNX int8"):
        line = next(line for line in text.splitlines() if line.startswith(row))
        assert line.rstrip().endswith("PASS"), line
    assert "Det. match" in text and "Score err" in text
    assert "TensorRT: skipped" in text or "TensorRT 1" in text


def test_every_artifact_written_and_listed(exported: dict) -> None:
    out: Path = exported["out"]
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.endswith(".partial") or n.startswith(".")], names
    # the staging folder was swapped in and the lock released: nothing is left beside --out
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")) == []
    for name in ARTIFACTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    listed = {a["path"]: a for a in exported["manifest"]["artifacts"]}
    plans = {p.name for p in out.glob("*.plan")}
    assert set(listed) == set(ARTIFACTS) - {"export.json"} | plans
    for name, entry in listed.items():
        assert entry["size"] == sum(f["size"] for f in entry["files"]) and entry["files"][0]["path"] == name
        assert entry["files"][0]["size"] == (out / name).stat().st_size
        assert entry["sha256"] == entry["files"][0]["sha256"] == sha256_file(out / name)
        assert entry["passed"] is True and entry["verdict"]["passed"] is True and entry["verdict"]["status"] == "pass"
    kinds = {a["name"]: (a["kind"], a["backend"], a["precision"]) for a in listed.values()}
    assert kinds["PyTorch folded"] == ("torch", "torch", "fp32")
    assert kinds["ONNX fp32"] == ("onnx", "onnxruntime", "fp32") and kinds["ONNX int8"] == ("onnx", "onnxruntime", "int8")
    manifest = exported["manifest"]
    assert manifest["manifest_version"] == MANIFEST_VERSION == 2
    assert manifest["status"] == "passed" and manifest["passed"] is True and manifest["unverified"] == []
    assert manifest["options"]["imgsz"] == list(IMGSZ) and manifest["options"]["batch"] == 2
    assert manifest["versions"]["onnxruntime"] and manifest["versions"]["torch"]
    assert {"load", "reference", "fold", "onnx_fp32", "onnx_fp16", "onnx_int8", "verify"} <= set(manifest["step_seconds"])
    # 4 images at --imgsz and 2 at 480x645, in batches of at most --batch
    assert manifest["parity_images"]["batches"] == [[2, 3, *IMGSZ], [2, 3, *IMGSZ], [2, 3, 480, 645]]
    assert check_folder(out) == []
    # artifacts must be readable by other users (a model server), not mkstemp's 0600
    assert (out / f"{STEM}.onnx").stat().st_mode & 0o044 == 0o044


def test_fold_and_fp32_parity_in_manifest_are_tensor_level(exported: dict) -> None:
    by_name = {a["name"]: a["verdict"] for a in exported["manifest"]["artifacts"]}
    for name in ("PyTorch folded", "ONNX fp32"):
        assert by_name[name]["rule"] == "tensor"
        assert by_name[name]["required"] == {"score_abs": FP32_TOL, "box_rel": FP32_TOL}
        assert by_name[name]["score_abs"] <= FP32_TOL
        assert by_name[name]["box_rel"] <= FP32_TOL
        assert by_name[name]["anchors"] > 0
    assert by_name["ONNX fp16"]["rule"] == "detection"
    assert by_name["ONNX fp16"]["match"]["reference"] > 1000  # the comparison had something to compare


def test_metadata_present(exported: dict, weights: Path) -> None:
    out: Path = exported["out"]
    for name, precision in ((f"{STEM}.onnx", "fp32"), (f"{STEM}.fp16.onnx", "fp16"), (f"{STEM}.int8.onnx", "int8")):
        meta = read_metadata(out / name)
        assert meta["precision"] == precision
        assert meta["config_name"] == "acfd-tiny"
        assert json.loads(meta["config"])["name"] == "acfd-tiny"
        assert meta["weights_sha256"] == sha256_file(weights)
        assert meta["tool_version"] == acfd_deploy.__version__
        contract = json.loads(meta["input"])
        assert contract["name"] == "images" and contract["min_side"] == 125
    model = onnx.load(str(out / f"{STEM}.onnx"))
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["boxes", "scores"]


def test_deploy_checkpoint_is_the_folded_graph(exported: dict, tiny_model: torch.nn.Module) -> None:
    folded = acfd_deploy.load_model(exported["out"] / f"{STEM}.deploy.pt")
    assert acfd_deploy.is_reparameterized(folded)
    x = realistic(2, 160, 203, seed=3)
    ref = TorchRunner(tiny_model).infer(x)
    assert tensor_diff(ref, TorchRunner(folded).infer(x)).ok(FP32_TOL, FP32_TOL)


@pytest.mark.parametrize("batch,h,w", [(3, 480, 645), (2, 333, 517), (1, 125, 131)])
def test_onnx_fp32_tensor_parity_at_other_shapes(exported: dict, tiny_model: torch.nn.Module, batch: int, h: int, w: int) -> None:
    """Dynamic batch, height and width: sizes the export never saw, docs/design.md#verification-and-tolerances."""
    x = realistic(batch, h, w, seed=h)
    ref = TorchRunner(tiny_model).infer(x)
    out = OnnxRuntimeRunner(exported["out"] / f"{STEM}.onnx").infer(x)
    assert out[0].shape == (batch, num_anchors(h, w, tiny_model.config), 4)
    diff = tensor_diff(ref, out)
    assert diff.score_abs <= FP32_TOL and diff.box_rel <= FP32_TOL, diff


def test_onnx_fp16_detection_parity(exported: dict, tiny_model: torch.nn.Module) -> None:
    """FP16: >= 99% of reference detections matched (IoU >= 0.9, |score diff| <= 0.02)."""
    path = exported["out"] / f"{STEM}.fp16.onnx"
    dtypes = conv_weight_dtypes(onnx.load(str(path)))
    assert dtypes["float16"] == sum(dtypes.values()), dtypes  # every conv really is fp16
    x = realistic(3, 333, 517, seed=5)
    ref = TorchRunner(tiny_model).infer(x)
    out = OnnxRuntimeRunner(path).infer(x)
    assert out[0].dtype == np.float32 and out[1].dtype == np.float32  # fp32 I/O kept
    match = detection_match(ref, out)
    assert match.reference > 1000
    assert match.rate is not None and match.rate >= FP16_MIN_MATCH, match
    # and it is not an fp32 model in disguise: the outputs differ at fp16 rounding level
    assert tensor_diff(ref, out).score_abs > 1e-6


def test_onnx_int8_detection_parity(exported: dict, tiny_model: torch.nn.Module) -> None:
    """INT8 (no labelled validation set here): at least 95% of the reference detections
    matched at IoU >= 0.9 with |score diff| <= 0.02, and score correlation >= 0.99."""
    path = exported["out"] / f"{STEM}.int8.onnx"
    model = onnx.load(str(path))
    assert conv_weight_dtypes(model)["int8"] >= 0.8 * sum(conv_weight_dtypes(model).values())
    x = realistic(3, 333, 517, seed=6)
    ref = TorchRunner(tiny_model).infer(x)
    out = OnnxRuntimeRunner(path).infer(x)
    match = detection_match(ref, out)
    assert match.reference > 1000
    assert match.rate is not None and match.rate >= INT8_MIN_MATCH, match
    assert np.corrcoef(ref[1].ravel(), out[1].ravel())[0, 1] >= 0.99
    assert tensor_diff(ref, out).score_abs > 1e-4  # really quantized


def test_int8_runs_the_ese_squeeze_as_global_average_pool(exported: dict) -> None:
    """The eSE squeezes (ReduceMean over H, W in the fp32 file) reach the int8 file as
    GlobalAveragePool between Q/DQ pairs, which ONNX Runtime fuses into an int8 kernel."""
    fp32 = onnx.load(str(exported["out"] / f"{STEM}.onnx"), load_external_data=False)
    int8 = onnx.load(str(exported["out"] / f"{STEM}.int8.onnx"))
    squeezes = sum(n.op_type == "ReduceMean" for n in fp32.graph.node)
    producers = {o: n for n in int8.graph.node for o in n.output}
    pools = [n for n in int8.graph.node if n.op_type == "GlobalAveragePool"]
    assert squeezes > 0 and len(pools) == squeezes
    assert not any(n.op_type == "ReduceMean" for n in int8.graph.node)
    assert all(producers[p.input[0]].op_type == "DequantizeLinear" for p in pools)
    # ONNX Runtime applies no session options from a file: the metadata tells people which
    assert "ORT_ENABLE_ALL" in read_metadata(exported["out"] / f"{STEM}.int8.onnx")["onnxruntime_session"]


def test_int8_of_random_weights_is_judged_by_the_detection_rule(exported: dict) -> None:
    # random weights find no faces, so AP cannot judge int8: the detection rule decides, and says why
    entry = next(a for a in exported["manifest"]["artifacts"] if a["name"] == "ONNX int8")
    v = entry["verdict"]
    assert v["rule"] == "detection" and v["reference_ap"] < 0.1 and v["ap"] is None and "do not detect enough" in v["reason"]
    assert v["required"]["match_rate"] == INT8_MIN_MATCH and v["match"]["reference"] >= 20
    assert "ONNX int8 is judged by the detection rule: ap rule:" in exported["stdout"]


def test_int8_file_rewritten_for_tensorrt_keeps_its_detections(exported: dict, tiny_model: torch.nn.Module) -> None:
    """TensorRT takes only signed symmetric int8 Q/DQ: the rewrite of the (U8S8) int8
    file must have no uint8 or non-zero zero points, no int32 bias DQ, and still match."""
    from onnx import numpy_helper

    from acfd_deploy.export.int8 import tensorrt_qdq

    src = onnx.load(str(exported["out"] / f"{STEM}.int8.onnx"))
    trt_model = tensorrt_qdq(src)
    inits = {t.name: numpy_helper.to_array(t) for t in trt_model.graph.initializer}
    qdq = [n for n in trt_model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        zp = inits[node.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), node.name
    src_inits = {t.name: numpy_helper.to_array(t) for t in src.graph.initializer}
    assert sum(src_inits[n.input[2]].dtype == np.uint8 for n in src.graph.node if n.op_type == "QuantizeLinear") > 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.onnx"
        onnx.save(trt_model, str(path))
        x = realistic(2, 333, 517, seed=8)
        match = detection_match(TorchRunner(tiny_model).infer(x), OnnxRuntimeRunner(path).infer(x))
    assert match.reference > 100 and match.rate is not None and match.rate >= INT8_MIN_MATCH, match
