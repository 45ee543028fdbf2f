"""A re-export never damages the export it replaces (docs/design.md#crash-safety).

One verified export of acfd-tiny is made per module; then a second export into the same
``--out`` runs as a real process and is stopped with SIGTERM or SIGKILL in the middle, or
collides with a third, or fails its checks. Each time ``--out`` must still be exactly the
first export, as its ``export.json`` lists it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import acfd_deploy
from acfd_deploy.cli.export import main
from acfd_deploy.manifest import check_folder
from tests.helpers import beside, write_calib

BASE_IMGSZ = ["160", "192"]
OTHER_IMGSZ = ["176", "208"]  # the interrupted re-export asks for another size


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def setup(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("staged-export")
    weights = acfd_deploy.save_checkpoint(tiny_model, root / "tiny.pth")
    calib = write_calib(root / "calib", count=3, size=(150, 170))
    return {"root": root, "weights": weights, "calib": calib}


def _args(setup: dict, out: Path, imgsz: list[str], *extra: str) -> list[str]:
    return ["--model", str(setup["weights"]), "--imgsz", *imgsz, "--engine", "onnx", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def base(setup: dict) -> dict:
    """The first export (the folded graph and ONNX fp32, verified)."""
    out = setup["root"] / "out"
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        rc = main(_args(setup, out, BASE_IMGSZ))
    assert rc == 0, buf.getvalue()
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["passed"] is True and check_folder(out) == []
    return {"out": out, "tree": _tree(out), "manifest": manifest}


def _assert_untouched(base: dict) -> None:
    out: Path = base["out"]
    assert check_folder(out) == []
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["created"] == base["manifest"]["created"] and manifest["options"] == base["manifest"]["options"]
    assert manifest["options"]["imgsz"] == [int(v) for v in BASE_IMGSZ]
    assert _tree(out) == base["tree"]  # byte for byte


def _start_reexport(setup: dict, out: Path) -> subprocess.Popen[str]:
    """``python -m acfd_deploy.cli.export`` into ``out`` at another size, with fp16 and int8
    calibrated on a small folder (a long run), returned once the child has written its
    first artifact (the fp32 ONNX) into its staging folder: well into the work, with the
    fp16 and int8 artifacts still to make."""
    args = _args(setup, out, OTHER_IMGSZ, "--fp16", "--int8", "--calib", str(setup["calib"]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "acfd_deploy.cli.export", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    prefix = f".{out.name}.staging-{proc.pid}-"

    def first_artifact_written() -> bool:
        for stage in (out.parent / name for name in beside(out) if name.startswith(prefix)):
            with contextlib.suppress(FileNotFoundError):  # the child may be swapping it in
                if any(f.suffix == ".onnx" for f in stage.iterdir()):
                    return True
        return False

    while not first_artifact_written():
        if proc.poll() is not None:
            stdout, stderr = proc.communicate()
            pytest.fail(f"the re-export ended (exit {proc.returncode}) before it started writing: {stdout[-1500:]} {stderr[-1500:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the re-export never wrote its first artifact")
        time.sleep(0.05)
    assert proc.poll() is None, "the re-export finished before it could be interrupted: the test proves nothing"
    return proc


def test_sigterm_mid_reexport_leaves_the_previous_export(setup: dict, base: dict) -> None:
    out = base["out"]
    proc = _start_reexport(setup, out)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-2000:]
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    _assert_untouched(base)
    assert beside(out) == []  # SIGTERM runs the cleanup: no staging folder, no lock file


def test_sigkill_mid_reexport_leaves_the_previous_export(setup: dict, base: dict) -> None:
    out = base["out"]
    proc = _start_reexport(setup, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    _assert_untouched(base)
    # SIGKILL runs no code: the half-made export stays beside --out (never in it) until the next run
    assert any(name.startswith(f".{out.name}.staging-{proc.pid}-") for name in beside(out)), beside(out)


def test_a_concurrent_export_into_the_same_out_is_refused(setup: dict, base: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = base["out"]
    proc = _start_reexport(setup, out)
    try:
        rc = main(_args(setup, out, BASE_IMGSZ))
        err = capsys.readouterr().err
        assert rc == 2, err
        assert f"is being written by pid {proc.pid} " in err and len(err.strip().splitlines()) == 1
        assert proc.poll() is None  # the refused run did not disturb the running one
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    _assert_untouched(base)


def test_a_failed_reexport_does_not_replace_a_verified_one(
    setup: dict, base: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from acfd_deploy.verify import rules

    out = base["out"]
    monkeypatch.setattr(rules, "FP32_TOL", 0.0)  # nothing but bit-exact passes now
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(_args(setup, out, OTHER_IMGSZ))
    err = capsys.readouterr().err
    assert rc == 1, err
    failed = out.with_name(out.name + ".failed")
    assert f"kept in {failed} for inspection; the previous verified export in {out} is unchanged" in err
    _assert_untouched(base)
    assert beside(out) == []  # a run that gets the lock removes what killed runs left
    kept = json.loads((failed / "export.json").read_text())
    assert kept["status"] == "failed" and kept["options"]["imgsz"] == [int(v) for v in OTHER_IMGSZ]
    assert check_folder(failed) == []
