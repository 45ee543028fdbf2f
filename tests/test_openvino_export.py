"""`acfd-export --int8 --openvino` end to end on the bundled demo model, and what the other
commands do with its OpenVINO artifacts: the export table and export.json rows, the IR's
metadata, acfd-bench rows (``--backend openvino``, ``--precision bf16``) and acfd-detect.

One export per session, at a non-square size that is no multiple of 128, with batch 2 and
the default synthetic validation set (enough faces for the int8 AP rule to judge).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

from acfd_deploy.bench.targets import TorchOptions, targets_for_export_dir  # noqa: E402
from acfd_deploy.cli import bench, detect, export  # noqa: E402
from acfd_deploy.export.onnx_export import read_metadata  # noqa: E402
from acfd_deploy.fileio import sha256_file  # noqa: E402
from acfd_deploy.manifest import check_folder  # noqa: E402
from acfd_deploy.runtime.openvino_model import cpu_supports_bf16, read_ir_metadata  # noqa: E402
from acfd_deploy.verify.rules import MAX_AP_DROP  # noqa: E402

IMGSZ = (424, 552)
STEM = "acfd-tiny-demo"
NATIVE_BF16, WHY_NOT_BF16 = cpu_supports_bf16()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("ov") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = export.main(["--int8", "--openvino", "--imgsz", *map(str, IMGSZ), "--batch", "2", "--out", str(out)])
    return {"rc": rc, "out": out, "stdout": buf.getvalue(), "manifest": json.loads((out / "export.json").read_text())}


def _entries(exported: dict) -> dict[str, dict]:
    return {a["name"]: a for a in exported["manifest"]["artifacts"]}


def test_table_has_the_openvino_rows(exported: dict) -> None:
    assert exported["rc"] == 0, exported["stdout"]
    lines = exported["stdout"].splitlines()
    rows = {name: next((line for line in lines if line.startswith(name)), "") for name in ("OpenVINO fp32", "OpenVINO int8")}
    assert rows["OpenVINO fp32"].split()[-3:] == ["tensor", "err<=1e-04", "PASS"], rows
    assert rows["OpenVINO int8"].split()[-4:] == ["ap", "AP", "drop<=0.01", "PASS"], rows
    bf16 = next((line for line in lines if line.startswith("OpenVINO bf16")), None)
    if NATIVE_BF16:
        assert bf16 is not None and bf16.split()[-3:] == ["detection", "match>=99%", "PASS"], bf16
    else:  # skipped, and the table says why
        assert bf16 is None and "bf16" in exported["stdout"] and WHY_NOT_BF16 in exported["stdout"]


def test_manifest_rows_are_openvino_with_both_files(exported: dict) -> None:
    out: Path = exported["out"]
    entries = _entries(exported)
    expected = {"OpenVINO fp32": (f"{STEM}.xml", "fp32", "tensor"), "OpenVINO int8": (f"{STEM}.int8.xml", "int8", "ap")}
    if NATIVE_BF16:
        expected["OpenVINO bf16"] = (f"{STEM}.xml", "bf16", "detection")
    assert {n for n in entries if n.startswith("OpenVINO")} == set(expected)
    for name, (path, precision, rule) in expected.items():
        entry = entries[name]
        assert (entry["kind"], entry["backend"], entry["precision"], entry["path"]) == ("openvino", "openvino", precision, path)
        assert entry["verdict"]["rule"] == rule and entry["verdict"]["status"] == "pass" and entry["passed"] is True
        files = [f["path"] for f in entry["files"]]
        assert files == [path, path.replace(".xml", ".bin")]
        for f in entry["files"]:
            assert f["sha256"] == sha256_file(out / f["path"]) and f["size"] == (out / f["path"]).stat().st_size
    # bf16 is the fp32 IR run with the bf16 hint: same files, and the option that says so
    if NATIVE_BF16:
        assert entries["OpenVINO bf16"]["runner_options"] == {"precision": "bf16"}
        assert entries["OpenVINO bf16"]["sha256"] == entries["OpenVINO fp32"]["sha256"]
    assert "runner_options" not in entries["OpenVINO fp32"]
    assert exported["manifest"]["status"] == "passed" and check_folder(out) == []


def test_int8_ap_is_judged_within_one_point(exported: dict) -> None:
    verdict = _entries(exported)["OpenVINO int8"]["verdict"]
    text = json.dumps(verdict)
    assert verdict["rule"] == "ap" and verdict["reference_ap"] >= 0.5, text
    assert verdict["ap_drop"] == pytest.approx(verdict["reference_ap"] - verdict["ap"]) and verdict["ap_drop"] <= MAX_AP_DROP, text
    assert verdict["validation"], text


def test_ir_carries_the_onnx_metadata(exported: dict) -> None:
    out: Path = exported["out"]
    onnx_meta = read_metadata(out / f"{STEM}.onnx")
    for xml, precision in ((f"{STEM}.xml", "fp32"), (f"{STEM}.int8.xml", "int8")):
        meta = read_ir_metadata(out / xml)
        assert meta["precision"] == precision
        assert json.loads(meta["config"]) == json.loads(onnx_meta["config"])
        assert json.loads(meta["input"]) == json.loads(onnx_meta["input"])


def test_bench_rows_filtered_to_openvino(exported: dict, tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    fast = ["--repeats", "1", "--min-time", "0", "--warmup", "0", "--imgsz", "160", "224", "--no-progress"]
    assert (
        bench.main(["--export-dir", str(exported["out"]), "--backend", "openvino", "--batch", "1,2", "--json", str(out_json), *fast]) == 0
    )
    rows = json.loads(out_json.read_text())["results"]
    assert {r["backend"] for r in rows} == {"openvino"}
    assert {r["precision"] for r in rows} == ({"fp32", "bf16", "int8"} if NATIVE_BF16 else {"fp32", "int8"})
    assert {r["batch"] for r in rows} == {1, 2} and all(r["per_image_ms"] > 0 for r in rows)


@pytest.mark.skipif(not NATIVE_BF16, reason=f"no native bf16 here: {WHY_NOT_BF16}")
def test_bench_precision_bf16_runs_an_fp32_ir_at_bf16(exported: dict, tmp_path: Path) -> None:
    """.xml only runs on OpenVINO: --precision bf16 needs no --backend to mean its bf16 hint."""
    out_json = tmp_path / "bench.json"
    fast = ["--repeats", "1", "--min-time", "0", "--warmup", "0", "--imgsz", "160", "224", "--no-progress"]
    assert bench.main(["--model", str(exported["out"] / f"{STEM}.xml"), "--precision", "bf16", "--json", str(out_json), *fast]) == 0
    rows = json.loads(out_json.read_text())["results"]
    assert [(r["backend"], r["precision"]) for r in rows] == [("openvino", "bf16")]


def test_a_cuda_run_skips_what_runs_on_cpu_only(exported: dict) -> None:
    """--device cuda lists the ONNX files (ONNX Runtime runs on CUDA) but not the IR, which
    OpenVINO runs on CPU only; a CPU run lists both."""
    on_cuda, _ = targets_for_export_dir(exported["out"], TorchOptions(device="cuda:0"))
    on_cpu, _ = targets_for_export_dir(exported["out"], TorchOptions(device="cpu"))
    assert {t.backend for t in on_cuda} == {"torch", "onnxruntime"}
    assert {"openvino", "onnxruntime"} <= {t.backend for t in on_cpu}


def test_detect_with_the_ir_finds_what_onnx_runtime_finds(exported: dict, tmp_path: Path) -> None:
    from PIL import Image

    from acfd_deploy.data.synth import generate_sample, sample_rng

    images = tmp_path / "in"
    images.mkdir()
    for i in range(3):
        Image.fromarray(generate_sample(sample_rng(21, i), 300, 380)[0]).save(images / f"s{i}.png")
    out: Path = exported["out"]
    found = {}
    for label, args in {
        "onnxruntime": ["--model", str(out / f"{STEM}.onnx")],
        "ir": ["--model", str(out / f"{STEM}.xml"), "--batch", "2"],  # batch > 1: throughput mode
        "onnx via openvino": ["--model", str(out / f"{STEM}.onnx"), "--backend", "openvino"],
    }.items():
        dest = tmp_path / label.replace(" ", "-")
        assert detect.main([str(images), *args, "--imgsz", "256", "320", "--out", str(dest), "--no-draw", "--no-progress"]) == 0
        meta = json.loads((dest / "detections.json").read_text())
        found[label] = {
            Path(r["path"]).name: np.array([[*d["box"], d["score"]] for d in r["detections"]]).reshape(-1, 5) for r in meta["images"]
        }
    reference = found["onnxruntime"]
    assert sum(len(v) for v in reference.values()) > 0
    for label in ("ir", "onnx via openvino"):
        assert found[label].keys() == reference.keys()
        for name, dets in reference.items():
            assert dets.shape == found[label][name].shape, (label, name)
            np.testing.assert_allclose(found[label][name], dets, rtol=0, atol=1e-2, err_msg=f"{label} {name}")
