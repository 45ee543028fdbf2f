"""acfd-synth, acfd-detect and acfd-eval end to end on acfd-tiny and synthetic images.

Untrained weights detect nothing meaningful, so these test the plumbing (files, formats,
exit codes, messages); the metric's correctness is tested on hand-computed cases and on
ground truth fed back as predictions.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import acfd_deploy
from acfd_deploy.cli import detect, evaluate, synth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert synth.main(["--out", str(out), "--num", "3", "--seed", "2", "--imgsz", "160", "200", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    acfd_deploy.save_checkpoint(tiny_model, path)
    return path


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_synth_writes_images_and_gt(dataset: Path) -> None:
    images = sorted((dataset / "images").iterdir())
    assert len(images) == 3
    rows = _rows(dataset / "gt.csv")
    assert rows and all(len(r) == 6 and r[5] == "face" for r in rows)
    assert {r[0] for r in rows} == {p.name for p in images}


def test_synth_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        synth.main(["--out", str(tmp_path), "--num", "0"])
    assert info.value.code == 2
    assert synth.main(["--out", str(tmp_path), "--num", "1", "--imgsz", "10", "10"]) == 2
    assert "at least 32" in capsys.readouterr().err
    assert synth.main(["--out", str(tmp_path), "--num", "1", "--size", "10", "10"]) == 2  # the old name still works
    assert "at least 32" in capsys.readouterr().err


def test_detect_writes_annotated_csv_json(dataset: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    for p in (dataset / "images").iterdir():
        (tmp_path / "in" / p.name).write_bytes(p.read_bytes())
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    rc = detect.main(
        [str(tmp_path / "in"), "--model", str(weights), "--imgsz", "160", "200", "--conf", "0.0", "--out", str(out), "--no-progress"]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert "broken.jpg" in captured.err and "Traceback" not in captured.err
    annotated = sorted(p.name for p in (out / "annotated").iterdir())
    assert annotated == sorted(p.name for p in (dataset / "images").iterdir())
    with Image.open(out / "annotated" / annotated[0]) as img:
        assert img.size == (200, 160)
    rows = _rows(out / "detections.csv")
    assert rows and all(len(r) == 7 and r[5] == "face" and 0.08 < float(r[6]) <= 1 for r in rows)
    meta = json.loads((out / "detections.json").read_text())
    assert meta["scales"] == [[160, 200]] and meta["nms_iou"] == 0.55 and meta["max_det"] == 100
    assert len(meta["images"]) == 3 and [e["path"].endswith("broken.jpg") for e in meta["errors"]] == [True]
    assert sum(len(i["detections"]) for i in meta["images"]) == len(rows)
    for record in meta["images"]:
        assert all(len(d["box"]) == 4 and d["box"][2] <= record["width"] - 1 for d in record["detections"])
    assert not list(out.rglob("*.partial"))


def test_detect_multiscale_single_image(dataset: Path, weights: Path, tmp_path: Path) -> None:
    image = sorted((dataset / "images").iterdir())[0]
    rc = detect.main(
        [str(image), "--model", str(weights), "--ms-test", "--keep-ratio", "--out", str(tmp_path), "--no-draw", "--no-progress"]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "detections.json").read_text())
    assert meta["scales"] == [[480, 645], [640, 860], [800, 1075]] and meta["keep_ratio"] is True
    assert not (tmp_path / "annotated").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.pth"], "not found"),
        (["--model", "{weights}", "--conf", "2"], "--conf"),
        (["--model", "{weights_as_txt}"], "unknown model type"),
    ],
)
def test_detect_bad_usage(
    dataset: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    txt = tmp_path / "w.txt"
    txt.write_bytes(b"x")
    args = [a.format(weights=weights, weights_as_txt=txt) for a in args]
    rc = detect.main([str(dataset / "images"), *args, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "detections.csv").exists()


def test_detect_nothing_readable(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    assert detect.main([str(bad), "--model", str(weights), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "could be read" in capsys.readouterr().err


def test_detect_with_an_engine_on_the_cpu_is_bad_input(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """.engine is a TensorRT plan for every command, and a plan runs on a GPU only."""
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    rc = detect.main([str(dataset / "images"), "--model", str(engine), "--device", "cpu", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "the tensorrt backend runs on cuda only" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_eval_ground_truth_as_predictions_scores_one(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = tmp_path / "pred.csv"
    pred.write_text("".join(",".join(r + ["0.9"]) + "\n" for r in _rows(dataset / "gt.csv")))
    js, plot = tmp_path / "m.json", tmp_path / "pr.png"
    rc = evaluate.main(
        ["--gt", str(dataset / "gt.csv"), "--pred", str(pred), "--json", str(js), "--plot", str(plot), "--images", str(dataset / "images")]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "AP50: 1.0000" in out.splitlines()
    metrics = json.loads(js.read_text())
    assert metrics["AP50"] == 1.0 and metrics["recall"] == 1.0 and metrics["gt_images"] == 3
    assert metrics["gt_boxes"] == len(_rows(dataset / "gt.csv"))
    with Image.open(plot) as img:
        assert img.format == "PNG"


def test_eval_runs_the_model(dataset: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved, js_model, js_csv = tmp_path / "pred.csv", tmp_path / "model.json", tmp_path / "csv.json"
    rc = evaluate.main(
        ["--gt", str(dataset / "gt.csv"), "--model", str(weights), "--images", str(dataset / "images"), "--imgsz", "160", "200"]
        + ["--save-pred", str(saved), "--no-progress", "--json", str(js_model)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    ap_lines = [line for line in out.splitlines() if line.startswith("AP50: ")]
    assert len(ap_lines) == 1 and 0.0 <= float(ap_lines[0].split()[1]) <= 1.0
    assert "sorted and cleaned" not in out  # the detector writes each image's detections best first
    # the saved CSV scores the same when read back, to the last bit
    rc = evaluate.main(["--gt", str(dataset / "gt.csv"), "--pred", str(saved), "--json", str(js_csv)])
    assert rc == 0 and ap_lines[0] in capsys.readouterr().out
    assert json.loads(js_model.read_text())["AP50"] == json.loads(js_csv.read_text())["AP50"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GT = "a.jpg,0,0,9,9,face\nb.jpg,10,10,29,29,face\n"


@pytest.mark.parametrize(
    ("gt", "pred", "extra", "message"),
    [
        ("", "a.jpg,0,0,9,9,face,0.9\n", [], "empty"),
        (GT, "", [], "--allow-empty-pred"),
        (GT, "a.jpg,0,0,9,9,face\n", [], "no score column"),
        (GT, "garbage\n", [], "not an iCartoonFace CSV"),
        (GT, "a.jpg,0,0,9,9,face,high\na.jpg,x,0,9,9,face,0.9\n", [], "no usable row"),
        (None, "a.jpg,0,0,9,9,face,0.9\n", [], "not found"),
        (GT, None, ["--model", "x.pth"], "--images"),
    ],
)
def test_eval_unusable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gt: str | None, pred: str | None, extra: list[str], message: str
) -> None:
    args = ["--gt", str(_write(tmp_path / "gt.csv", gt) if gt is not None else tmp_path / "missing.csv")]
    if pred is not None:
        args += ["--pred", str(_write(tmp_path / "pred.csv", pred))]
    rc = evaluate.main(args + extra)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_eval_empty_predictions_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = evaluate.main(["--gt", str(_write(tmp_path / "gt.csv", GT)), "--pred", str(_write(tmp_path / "p.csv", "")), "--allow-empty-pred"])
    assert rc == 0 and "AP50: 0.0000" in capsys.readouterr().out


def test_eval_skips_bad_rows_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _write(tmp_path / "gt.csv", GT + "c.jpg,5,5,1,1,face\nc.jpg,1,2\n")
    pred = _write(
        tmp_path / "p.csv",
        "a.jpg,0,0,9,9,face,0.9\nb.jpg,10,10,29,29,face,0.8\nb.jpg,10,10,29,29,face,oops\nz.jpg,0,0,5,5,face,0.99\nz.jpg,1,1,5,5,face,0.5\n",
    )
    rc = evaluate.main(["--gt", str(gt), "--pred", str(pred)])
    captured = capsys.readouterr()
    assert rc == 0 and "AP50: 1.0000" in captured.out
    err = captured.err
    assert "skipped 2 row(s)" in err and "line 3" in err and "line 4" in err  # gt: x2 < x1, wrong columns
    assert "skipped 1 row(s)" in err  # pred: bad score
    assert "2 detection(s) on 1 image(s) without ground truth ignored (z.jpg)" in err


def test_eval_clips_boxes_outside_the_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "imgs" / "a.jpg")
    gt = _write(tmp_path / "gt.csv", "a.jpg,0,0,9,9,face\nmissing.jpg,0,0,9,9,face\n")
    pred = _write(tmp_path / "p.csv", "a.jpg,-4,0,9,9,face,0.9\na.jpg,0,0,40,40,face,0.1\n")
    rc = evaluate.main(["--gt", str(gt), "--pred", str(pred), "--images", str(tmp_path / "imgs")])
    captured = capsys.readouterr()
    assert rc == 0
    assert "2 predicted box(es) on 1 image(s) reach outside their image" in captured.err
    assert "1 of 2 ground-truth images are not in" in captured.err
    assert "AP50: 1.0000" in captured.out  # scored unclipped: [-4..9] still has IoU 100/140 with [0..9]


def test_console_script_exit_code(dataset: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "acfd_deploy.cli.evaluate", "--gt", str(dataset / "gt.csv"), "--pred", str(dataset / "gt.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no score column" in proc.stderr and "Traceback" not in proc.stderr


def test_gt_fed_back_through_python_api_is_one(dataset: Path) -> None:
    from acfd_deploy.data import read_annotations
    from acfd_deploy.eval import evaluate as score

    gt = read_annotations(dataset / "gt.csv")
    result = score(gt.boxes, gt.boxes, {k: np.linspace(1, 0.5, len(v)) for k, v in gt.boxes.items()})
    assert result.ap == pytest.approx(1.0) and result.num_tp == gt.num_boxes


def test_an_artifact_its_backend_cannot_load_is_bad_input(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage, not protobuf")
    rc = detect.main([str(dataset / "images"), "--model", str(bad), "--device", "cpu", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "ONNX Runtime cannot load" in err and "bad.onnx" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_detect_replaces_its_output_folder_as_a_whole(dataset: Path, weights: Path, tmp_path: Path) -> None:
    """A rerun replaces the previous output (no stale annotated image of an input that is
    gone); a folder that is not a detect output is refused."""
    images = sorted((dataset / "images").iterdir())
    out = tmp_path / "out"
    common = ["--model", str(weights), "--imgsz", "160", "200", "--out", str(out), "--no-progress"]
    assert detect.main([str(images[0]), str(images[1]), *common]) == 0
    assert len(list((out / "annotated").iterdir())) == 2
    assert detect.main([str(images[2]), *common]) == 0
    assert [p.name for p in (out / "annotated").iterdir()] == [images[2].name]
    assert [r["image"] for r in json.loads((out / "detections.json").read_text())["images"]] == [images[2].name]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    assert detect.main([str(images[0]), *common[:-3], "--out", str(mine), "--no-progress"]) == 2
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]


def test_eval_negative_coordinates_warned_without_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _write(tmp_path / "gt.csv", "a.jpg,-2,0,9,9,face\n")
    pred = _write(tmp_path / "p.csv", "a.jpg,0,0,9,9,face,0.9\n")
    assert evaluate.main(["--gt", str(gt), "--pred", str(pred)]) == 0
    captured = capsys.readouterr()
    assert "1 ground-truth box(es) on 1 image(s) reach outside their image" in captured.err
    assert "AP50: 1.0000" in captured.out


def test_detect_with_onnx_matches_pytorch(dataset: Path, weights: Path, tiny_model, tmp_path: Path) -> None:
    """The same pipeline over another runner: ONNX Runtime gives the PyTorch detections."""
    pytest.importorskip("onnxruntime")
    from acfd_deploy.export.onnx_export import export_onnx, save_onnx

    onnx_path = save_onnx(export_onnx(acfd_deploy.reparameterize(tiny_model)), tmp_path / "tiny.onnx")
    common = [str(dataset / "images"), "--imgsz", "160", "200", "--no-draw", "--no-progress"]
    assert detect.main([*common, "--model", str(weights), "--out", str(tmp_path / "pt")]) == 0
    assert detect.main([*common, "--model", str(onnx_path), "--out", str(tmp_path / "ort")]) == 0
    pt = json.loads((tmp_path / "pt" / "detections.json").read_text())
    ort = json.loads((tmp_path / "ort" / "detections.json").read_text())
    assert ort["runner"] != pt["runner"]
    for a, b in zip(pt["images"], ort["images"]):
        assert a["image"] == b["image"] and len(a["detections"]) > 0
        rows_a = np.array([[*d["box"], d["score"]] for d in a["detections"]])
        rows_b = np.array([[*d["box"], d["score"]] for d in b["detections"]])
        # match as sets: a near-tie in score or IoU may legitimately reorder or swap one
        diff = np.abs(rows_a[:, None, :] - rows_b[None, :, :])
        matched = ((diff[..., :4] < 0.05).all(-1) & (diff[..., 4] < 1e-4)).any(axis=1)
        assert matched.mean() >= 0.95 and abs(len(rows_a) - len(rows_b)) <= 2
