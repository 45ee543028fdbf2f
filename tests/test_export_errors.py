"""acfd-export on bad input (exit 2, one line, nothing written), an interrupted export
(the previous output untouched, nothing left beside it), and a parity failure (exit 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import acfd_deploy
from acfd_deploy.cli.export import main
from tests.helpers import beside, write_calib


def _exit_code(args: list[str]) -> int:
    """main()'s return value, or argparse's exit status for usage errors."""
    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def tiny_weights(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return acfd_deploy.save_checkpoint(tiny_model, tmp_path_factory.mktemp("w") / "tiny.pth")


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_calib(tmp_path_factory.mktemp("calib"), count=3, size=(150, 170))


def _bad_cases(tmp: Path, weights: Path, calib: Path) -> dict[str, tuple[list[str], str]]:
    garbage = tmp / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    truncated = tmp / "truncated.pth"
    truncated.write_bytes(weights.read_bytes()[:5000])
    empty_calib = tmp / "empty_calib"
    empty_calib.mkdir()
    bad_calib = tmp / "bad_calib"
    bad_calib.mkdir()
    (bad_calib / "broken.png").write_bytes(b"\x89PNG but not really")
    a_file = tmp / "a_file"
    a_file.write_text("x")
    val_csv = tmp / "val.csv"
    val_csv.write_text("gone.png,10,10,50,50,face\n")
    w = ["--weights", str(weights)]
    i8 = [*w, "--int8", "--calib", str(calib)]
    return {
        "missing weights": (["--weights", str(tmp / "nope.pth")], "not found"),
        "corrupt weights": (["--weights", str(garbage)], "garbage.pth (is not a PyTorch checkpoint|holds Python objects)"),
        "truncated weights": (["--weights", str(truncated)], "truncated"),
        "mismatched weights": ([*w, "--config", "acfd-vovnetv3-51"], "does not fit"),
        "unknown config": (["--config", "acfd-huge", "--random-init"], "unknown model config"),
        "random-init without config": (["--random-init"], "--config"),
        "out is a file": ([*w, "--out", str(a_file)], "not a folder"),
        "int8 without images": ([*w, "--int8", "--calib", str(empty_calib)], "calibration images"),
        "int8 calib missing": ([*w, "--int8", "--calib", str(tmp / "no_such_dir")], "not a folder"),
        "int8 unreadable image": ([*w, "--int8", "--calib", str(bad_calib)], r"calibration image .*broken\.png: not an image file"),
        "unknown engine": ([*w, "--engine", "openvino"], "--engine: invalid choice: 'openvino'"),
        "size below minimum": ([*w, "--imgsz", "100", "300"], "minimum side 125"),
        "zero batch": ([*w, "--batch", "0"], "positive integer"),
        "bad workspace": ([*w, "--workspace", "-1"], "positive size"),
        "val csv without images": ([*i8, "--val-data", str(val_csv)], "go together"),
        "val without int8": ([*w, "--val-data", str(val_csv), "--val-images", str(tmp)], "judge the --int8"),
        "val images missing": ([*i8, "--val-data", str(val_csv), "--val-images", str(tmp)], "none of its images"),
        "val folder missing": ([*i8, "--val-data", str(val_csv), "--val-images", str(tmp / "nope")], "not a directory"),
        "zero val count": ([*i8, "--val-count", "0"], "--val-count: expected a positive integer, got 0"),
        "val set too small": ([*i8, "--val-count", "5"], "needs at least 500 faces .* raise --val-count"),
    }


CASES = [
    "missing weights",
    "corrupt weights",
    "truncated weights",
    "mismatched weights",
    "unknown config",
    "random-init without config",
    "out is a file",
    "int8 without images",
    "int8 calib missing",
    "int8 unreadable image",
    "unknown engine",
    "size below minimum",
    "zero batch",
    "bad workspace",
    "val csv without images",
    "val without int8",
    "val images missing",
    "val folder missing",
    "zero val count",
    "val set too small",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str, tmp_path: Path, tiny_weights: Path, calib: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, expect = _bad_cases(tmp_path, tiny_weights, calib)[case]
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    assert _exit_code(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(expect, err), err
    assert "Traceback" not in err
    leftovers = [n for n in _files(out) if n.endswith((".onnx", ".plan", ".pt", ".json", ".partial"))]
    assert leftovers == [] and beside(out) == []


def test_engine_tensorrt_without_tensorrt_is_bad_input(tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.export.tensorrt import tensorrt_status

    if tensorrt_status()[0]:
        pytest.skip("TensorRT and a GPU are present here")
    assert main(["--weights", str(tiny_weights), "--engine", "tensorrt", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--engine tensorrt needs TensorRT and a CUDA GPU" in err
    assert _files(tmp_path / "o") == []


def test_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--weights", "--config", "--fp16", "--int8", "--calib", "--imgsz", "--batch", "--opset", "--no-simplify",
                 "--engine", "--workspace", "--out", "--debug", "--random-init", "--strict", "--device", "--version"):  # fmt: skip
        assert flag in text, flag


@pytest.mark.parametrize("where", ["int8", "onnx_write"])
def test_interrupted_export_leaves_no_complete_looking_file(
    where: str, tmp_path: Path, tiny_weights: Path, calib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle: after the fp32 and fp16 ONNX were written (int8), or in the
    middle of writing a file (onnx_write). The earlier output is exactly as it was and no
    half-made export is left beside it."""
    import onnx

    import acfd_deploy.export.int8 as int8_mod

    if where == "int8":

        def interrupted(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(int8_mod, "quantize_int8", interrupted)
    else:
        real_save = onnx.save
        calls = {"n": 0}

        def save_then_die(proto: onnx.ModelProto, path: str, *a: object, **k: object) -> None:
            calls["n"] += 1
            real_save(proto, path, *a, **k)  # the bytes are on disk under the temporary name
            if calls["n"] == 2:  # the fp16 file
                raise KeyboardInterrupt

        monkeypatch.setattr(onnx, "save", save_then_die)
    out = tmp_path / "out"
    out.mkdir()
    (out / "export.json").write_text("{}")  # an earlier run's output
    (out / "tiny.onnx").write_bytes(b"the earlier model")
    args = ["--weights", str(tiny_weights), "--fp16", "--int8", "--calib", str(calib), "--imgsz", "160", "192", "--out", str(out)]
    assert main(args) == 130
    assert _files(out) == ["export.json", "tiny.onnx"], _files(out)
    assert (out / "export.json").read_text() == "{}" and (out / "tiny.onnx").read_bytes() == b"the earlier model"
    assert beside(out) == []


def test_parity_failure_exits_1_and_keeps_the_evidence(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from acfd_deploy.manifest import check_folder
    from acfd_deploy.verify import rules

    monkeypatch.setattr(rules, "FP32_TOL", 0.0)  # nothing but bit-exact passes now
    out = tmp_path / "out"
    assert main(["--weights", str(tiny_weights), "--imgsz", "160", "192", "--engine", "onnx", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "FAILED: PyTorch folded, ONNX fp32" in captured.err
    assert "TensorRT: skipped (--engine onnx)" in captured.out
    import json

    # no earlier verified export here: the failed one is kept in --out for inspection
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["passed"] is False and manifest["status"] == "failed"
    assert all(a["passed"] is False and a["verdict"]["required"]["score_abs"] == 0.0 for a in manifest["artifacts"])
    assert (out / "tiny.onnx").is_file() and check_folder(out) == []
    assert not (tmp_path / "out.failed").exists() and beside(out) == []
