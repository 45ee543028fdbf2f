"""No rule passes on zero evidence (docs/design.md#verification-and-tolerances).

Weights that detect nothing (acfd-tiny whose face logit is pushed far below zero, so
every score is < 0.3) leave the int8 artifact with nothing to be judged on: AP cannot
judge (the reference's AP50 is 0) and there is no reference detection to find again. The
export must say ``n/a`` and record it as unverified, never as passed; ``--strict`` makes
that an error.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import pytest
import torch

import acfd_deploy
from acfd_deploy.cli.export import main
from acfd_deploy.manifest import check_folder
from acfd_deploy.runtime.torch_runner import TorchRunner
from acfd_deploy.verify.compare import DET_SCORE_THRESHOLD
from acfd_deploy.verify.inputs import parity_inputs

IMGSZ = (160, 192)


@pytest.fixture(scope="module")
def blind(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("blind")
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        model.head.cls.bias.fill_(-30.0)  # sigmoid(-30 + a little) is ~1e-13: no anchor reaches 0.3
    weights = acfd_deploy.save_checkpoint(model, root / "blind.pth")
    from tests.helpers import write_calib

    calib = write_calib(root / "calib", count=3, size=(150, 170))
    return {"root": root, "weights": weights, "calib": calib, "model": model}


def _export(blind: dict, out: Path, *extra: str) -> tuple[int, str]:
    args = ["--model", str(blind["weights"]), "--int8", "--calib", str(blind["calib"]), "--imgsz", *map(str, IMGSZ)]
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        rc = main([*args, "--engine", "onnx", "--out", str(out), *extra])
    return rc, buf.getvalue()


def test_the_weights_really_detect_nothing(blind: dict) -> None:
    runner = TorchRunner(blind["model"])
    top = max(float(runner.infer(batch)[1].max()) for batch in parity_inputs(IMGSZ))
    assert top < DET_SCORE_THRESHOLD, top


@pytest.fixture(scope="module")
def lenient(blind: dict) -> dict:
    out = blind["root"] / "lenient"
    rc, stdout = _export(blind, out)
    return {"rc": rc, "stdout": stdout, "out": out, "manifest": json.loads((out / "export.json").read_text())}


def test_int8_with_no_evidence_is_n_a_in_the_table(lenient: dict) -> None:
    assert lenient["rc"] == 0, lenient["stdout"]  # without --strict, unverified is reported, not failed
    lines = lenient["stdout"].splitlines()
    int8_row = next(line for line in lines if line.startswith("ONNX int8"))
    assert int8_row.rstrip().endswith("n/a") and "none to match" in int8_row, int8_row
    assert "PASS" not in int8_row and "FAIL" not in int8_row
    assert "% of 0" not in lenient["stdout"]
    assert any(line.startswith("ONNX int8: n/a, not verified (ap rule:") for line in lines), lenient["stdout"]
    for row in ("PyTorch folded", "ONNX fp32"):  # the fp32 artifacts still compare tensor by tensor
        assert next(line for line in lines if line.startswith(row)).rstrip().endswith("PASS")


def test_int8_with_no_evidence_is_unverified_in_the_manifest(lenient: dict) -> None:
    manifest = lenient["manifest"]
    int8 = next(a for a in manifest["artifacts"] if a["name"] == "ONNX int8")
    assert int8["passed"] is None and int8["verdict"]["status"] == "n/a" and int8["verdict"]["passed"] is None
    assert int8["verdict"]["rule"] == "none" and int8["verdict"]["match"]["reference"] == 0
    assert int8["verdict"]["match"]["rate"] is None and int8["verdict"]["reference_ap"] == 0.0
    reason = int8["verdict"]["reason"]
    assert "ap rule:" in reason and "detection rule: 0 reference detection(s)" in reason
    assert manifest["status"] == "unverified" and manifest["passed"] is None and manifest["unverified"] == ["ONNX int8"]
    assert check_folder(lenient["out"]) == []


def test_strict_makes_unverified_an_error(blind: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = blind["root"] / "strict"
    rc, stdout = _export(blind, out, "--strict")
    err = capsys.readouterr().err
    assert rc == 1, stdout + err
    assert "not verified (--strict): ONNX int8" in err
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["strict"] is True and manifest["status"] == "unverified" and manifest["passed"] is None
