"""One flag vocabulary and one exit-code contract for every command
(docs/design.md#public-contracts): --version and --help everywhere, --imgsz H W or one
number, --device {auto,cpu,cuda,cuda:N}, the umbrella ``acfd COMMAND``, and bugs reported
as one "internal error" line (the traceback only with --debug)."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import pytest
import torch

import acfd_deploy
from acfd_deploy.cli.main import COMMANDS as UMBRELLA_COMMANDS
from acfd_deploy.cli.main import main as acfd_main

# every command the umbrella knows, so a new one cannot skip these contract tests (acfd-serve
# included: its flags parse without the serve extra, and --version/--help start no server)
COMMANDS = {f"acfd-{name}": module for name, (module, _) in UMBRELLA_COMMANDS.items()}
PROGS = list(COMMANDS)


def _module(prog: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(COMMANDS[prog])


def _exit(call) -> int:  # type: ignore[no-untyped-def]
    """The exit status of a call that argparse may end with SystemExit."""
    try:
        return int(call())
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("prog", PROGS)
def test_version_everywhere(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(lambda: _module(prog).main(["--version"])) == 0
    assert capsys.readouterr().out.strip() == f"{prog} (acfd-deploy) {acfd_deploy.__version__}"


@pytest.mark.parametrize("prog", PROGS)
def test_help_shows_only_defaults_worth_reading(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(lambda: _module(prog).main(["--help"])) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {prog} ")
    for noise in ("(default: None)", "(default: False)", "(default: True)", "(default: (", "(default: [", "default: SUPPRESS"):
        assert noise not in text, noise
    assert "--version" in text and "--debug" in text


@pytest.mark.parametrize("prog", PROGS)
def test_every_flag_has_help_text(prog: str) -> None:
    parser = _module(prog).build_parser()
    undocumented = [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if a.help is None or (a.help != argparse.SUPPRESS and not a.help.strip())
    ]
    assert undocumented == [], undocumented


@pytest.mark.parametrize("prog", ["acfd-export", "acfd-detect", "acfd-eval", "acfd-bench", "acfd-train"])
def test_model_device_and_imgsz_are_the_same_flags_everywhere(prog: str) -> None:
    parser = _module(prog).build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    assert {"--device", "--imgsz"} <= flags
    if prog != "acfd-train":
        assert "--model" in flags
    device = next(a for a in parser._actions if "--device" in a.option_strings)
    assert device.default == "auto"


def test_imgsz_takes_h_w_or_one_number() -> None:
    from acfd_deploy.cli import detect, export, train

    parse = detect.build_parser().parse_args
    assert parse(["a.png", "--imgsz", "320"]).imgsz == (320, 320)
    assert parse(["a.png", "--imgsz", "320", "480"]).imgsz == (320, 480)
    assert export.build_parser().parse_args(["--imgsz", "256"]).imgsz == (256, 256)
    assert train.build_parser().parse_args(["--imgsz", "384"]).imgsz == (384, 384)
    assert export.build_parser().parse_args([]).imgsz == (640, 640)


@pytest.mark.parametrize(
    "args", [["--imgsz", "1", "2", "3"], ["--imgsz", "0"], ["--imgsz", "x"], ["--device", "gpu"], ["--device", "cuda:x"]]
)
def test_bad_vocabulary_is_one_line_exit_2(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.cli import detect

    assert _exit(lambda: detect.main(["a.png", *args, "--out", str(tmp_path / "o")])) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("acfd-detect: error: "), err
    assert not (tmp_path / "o").exists()


def test_detect_runs_at_one_number_imgsz(tmp_path: Path) -> None:
    from PIL import Image

    from acfd_deploy.cli import detect
    from acfd_deploy.data.synth import generate_sample, sample_rng

    image, _ = generate_sample(sample_rng(5, 0), 200, 260)
    Image.fromarray(image).save(tmp_path / "scene.png")
    out = tmp_path / "out"
    assert detect.main([str(tmp_path / "scene.png"), "--imgsz", "320", "--out", str(out), "--no-draw", "--no-progress"]) == 0
    meta = json.loads((out / "detections.json").read_text())
    assert meta["scales"] == [[320, 320]]


# ---------------------------------------------------------------- the umbrella command


def test_acfd_export_help_through_the_umbrella(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(lambda: acfd_main(["export", "--help"])) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: acfd export ") and "--fp16" in text and "--model" in text


def test_acfd_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert acfd_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"acfd (acfd-deploy) {acfd_deploy.__version__}"
    assert acfd_main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert all(f"  {name}" in usage for name in ("export", "detect", "eval", "bench", "train", "synth"))
    assert acfd_main([]) == 2  # no command: the usage, on stderr, exit 2
    assert "usage: acfd COMMAND" in capsys.readouterr().err


def test_acfd_synth_takes_the_same_flags_as_acfd_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert acfd_main(["synth", "--out", str(tmp_path), "--num", "1", "--imgsz", "64", "--no-progress"]) == 0
    from PIL import Image

    (image,) = (tmp_path / "images").iterdir()
    with Image.open(image) as img:
        assert img.size == (64, 64)
    assert acfd_main(["synth", "--out", str(tmp_path / "x"), "--num", "1", "--imgsz", "10"]) == 2
    assert capsys.readouterr().err.startswith("acfd synth: error: ")


def test_unknown_umbrella_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert acfd_main(["exprot", "--fp16"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown command 'exprot'" in err and "export" in err


# ---------------------------------------------------------------- --device without CUDA


needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")


@needs_no_cuda
def test_device_cuda_without_cuda_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from acfd_deploy.cli import bench, detect
    from acfd_deploy.resources import demo_weights

    Image.new("RGB", (150, 150), (90, 120, 200)).save(tmp_path / "a.png")
    args = [str(tmp_path / "a.png"), "--model", str(demo_weights()), "--device", "cuda", "--out", str(tmp_path / "o"), "--no-progress"]
    assert detect.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda:0: no CUDA device is visible" in err[0], err
    assert not (tmp_path / "o").exists()
    assert bench.main(["--model", str(tmp_path / "m.onnx"), "--device", "cuda:1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda:1: no CUDA device is visible" in err[0], err


# ---------------------------------------------------------------- internal errors


def _break_synth(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import acfd_deploy.data.synth as synth_data

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(synth_data, "write_dataset", broken)


def test_a_bug_is_one_internal_error_line_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from acfd_deploy.cli import synth

    _break_synth(monkeypatch, RuntimeError("the index went\n  negative"))
    assert synth.main(["--out", str(tmp_path), "--num", "1", "--no-progress"]) == 3  # not 1: no check failed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "acfd-synth: internal error: RuntimeError: the index went negative" in err and "--debug" in err


def test_debug_lets_the_bug_propagate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from acfd_deploy.cli import synth

    _break_synth(monkeypatch, RuntimeError("the index went negative"))
    with pytest.raises(RuntimeError, match="the index went negative"):
        synth.main(["--out", str(tmp_path), "--num", "1", "--no-progress", "--debug"])


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        ("acfd", 2, "acfd-synth: error: bad input here"),
        ("check", 1, "acfd-synth: FAILED: a check failed"),
        ("interrupt", 130, "acfd-synth: interrupted"),
        ("sigterm", 143, "acfd-synth: terminated (SIGTERM)"),
    ],
)
def test_exit_codes_by_exception(
    error: str, code: int, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from acfd_deploy.cli import synth
    from acfd_deploy.errors import AcfdError, CheckFailed, Terminated

    exc = {
        "acfd": AcfdError("bad input here"),
        "check": CheckFailed("a check failed"),
        "interrupt": KeyboardInterrupt(),
        "sigterm": Terminated(),
    }[error]
    _break_synth(monkeypatch, exc)
    assert synth.main(["--out", str(tmp_path), "--num", "1", "--no-progress"]) == code
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_sigterm_handler_is_restored_after_a_command(tmp_path: Path) -> None:
    import signal

    from acfd_deploy.cli import synth

    before = signal.getsignal(signal.SIGTERM)
    assert synth.main(["--out", str(tmp_path), "--num", "1", "--imgsz", "64", "--no-progress"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_numbers_are_finite(text: str) -> None:
    """nan passes every bound check and inf every lower one: both are refused by name."""
    from acfd_deploy.cli.common import number

    parse = number(float, "a positive number of seconds", 1e-3)
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a positive number of seconds, got '{text}'"):
        parse(text)
    assert parse("2.5") == 2.5
