"""AOTInductor packages (.pt2): the export step, the runner, the refusals, the metadata.

The refusal and metadata tests run on hand-built archives (a PT2 zip with a dummy shared
library): every refusal must come before the library is loaded, so a test that reached
the loader would fail on the dummy instead. The export tests share one real
``acfd-export --pt2`` of the demo model (AOTInductor compiles C++, minutes on 2 cores:
marked slow) and check it at sizes and batches it was not traced at.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import acfd_deploy
from acfd_deploy.errors import AcfdError
from acfd_deploy.export.pt2 import export_min_side, trace_size
from acfd_deploy.fileio import sha256_file
from acfd_deploy.runtime.device import Device
from acfd_deploy.runtime.pt2_package import METADATA_ENTRY, PackageMismatchError, add_metadata, check_binding, read_metadata
from acfd_deploy.runtime.pt2_runner import Pt2Runner
from acfd_deploy.runtime.registry import artifact_precision, backend_for, load_runner

RANGES = {"batch": [1, 64], "height": [253, 4096], "width": [253, 4096]}


def _meta(**overrides: Any) -> dict[str, Any]:
    meta = {
        "precision": "fp32",
        "device": "cpu",
        "torch_version": torch.__version__,
        "cpu_isa": "scalar",
        "cpu_flags": [],
        "input": {"min_side": 253, "ranges": RANGES},
        "config_name": "acfd-tiny",
    }
    return {**meta, **overrides}


def _archive(files: dict[str, bytes], root: str = "model") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"{root}/{name}", data)
    return buffer.getvalue()


def fake_package(path: Path, **overrides: Any) -> Path:
    """A PT2 archive shaped like AOTInductor's, with a dummy library: loading it would fail."""
    body = _archive({"archive_format": b"pt2", "archive_version": b"0", "data/aotinductor/model/x.wrapper.so": b"\x7fELF dummy"})
    return add_metadata(body, path, _meta(**overrides))


# ---------------------------------------------------------------- pure facts


def test_export_min_side_is_where_the_coarsest_level_reaches_two_pixels() -> None:
    from acfd_deploy.model.anchors import feature_sizes, min_input_size

    config = acfd_deploy.build_model("acfd-tiny").config
    lo = export_min_side(config)
    assert lo == 253 and min_input_size(config) == 125
    assert min(map(min, feature_sizes(lo, lo, config))) == 2 and min(map(min, feature_sizes(lo - 1, lo - 1, config))) == 1


def test_the_export_form_of_the_pool_is_the_same_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Floor mode over -inf end padding (what torch.export sees) equals ceil mode, every size."""
    from acfd_deploy.model.backbone import downsample

    x = torch.randn(2, 3, 41, 38)
    for h, w in [(2, 2), (3, 4), (4, 5), (9, 10), (40, 37), (41, 38)]:
        eager = downsample(x[..., :h, :w])
        monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
        exported = downsample(x[..., :h, :w])
        monkeypatch.undo()
        assert exported.shape == eager.shape and torch.equal(exported, eager)


def test_trace_size_avoids_the_parity_sizes() -> None:
    config = acfd_deploy.build_model("acfd-tiny").config
    h, w = trace_size(config, [(640, 640), (480, 645)])
    assert min(h, w) >= 253 and h != w
    assert trace_size(config, [(h, w)]) != (h, w)


# ---------------------------------------------------------------- metadata and refusals (no compile)


def test_metadata_is_read_without_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fake_package(tmp_path / "m.pt2", precision="fp16")
    monkeypatch.setattr(torch._inductor, "aoti_load_package", lambda *a, **k: pytest.fail("loaded"))
    meta = read_metadata(path)
    assert meta["format"] == "acfd-pt2/1" and meta["input"]["ranges"] == RANGES
    assert artifact_precision(path) == "fp16" and backend_for(path).name == "pt2"
    with zipfile.ZipFile(path) as archive:  # the entry is plain JSON any zip tool reads
        assert json.loads(archive.read(f"model/{METADATA_ENTRY}"))["device"] == "cpu"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"just text, not a zip"), "not a zip archive"),
        (lambda p: p.write_bytes(fake_package(p).read_bytes()[:300]), "not a zip archive"),
        (lambda p: p.write_bytes(_archive({"README.md": b"hello"})), "not a PyTorch 2 package"),
        (lambda p: p.write_bytes(_archive({"archive_format": b"pt2", "models/m.json": b"{}"})), "without a compiled AOTInductor model"),
        (lambda p: p.write_bytes(_archive({"archive_format": b"pt2", "data/aotinductor/model/x.so": b"x"})), "without acfd metadata"),
    ],
    ids=["not-a-zip", "truncated", "other-zip", "exported-program-only", "no-metadata"],
)
def test_bad_files_are_refused_in_one_line(tmp_path: Path, make: Any, message: str) -> None:
    path = tmp_path / "m.pt2"
    make(path)
    with pytest.raises(AcfdError, match=message) as info:
        load_runner(path, device="cpu")
    assert "\n" not in str(info.value)


def test_a_damaged_entry_is_refused_by_its_crc(tmp_path: Path) -> None:
    path = fake_package(tmp_path / "m.pt2")
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"\x7fELF dummy")
    data[at + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AcfdError, match="fails its CRC check"):
        read_metadata(path)


@pytest.mark.parametrize(
    ("overrides", "device", "message"),
    [
        ({"device": "cuda"}, "auto", "compiled for cuda, but this machine has no CUDA device"),
        ({}, "cuda", "compiled for cpu, but --device cuda was asked for"),
        ({"torch_version": "2.12.0+cpu"}, "cpu", f"compiled by torch 2.12.0+cpu, this is torch {torch.__version__}"),
        ({"cpu_isa": "future", "cpu_flags": ["avx1024_made_up"]}, "cpu", "needs avx1024_made_up, which this CPU lacks"),
    ],
    ids=["cuda-package-here", "cpu-package-on-cuda", "other-torch", "other-isa"],
)
def test_packages_bound_elsewhere_are_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any], device: str, message: str
) -> None:
    if torch.cuda.is_available() and overrides.get("device") == "cuda":
        pytest.skip("this machine has a CUDA device")
    path = fake_package(tmp_path / "m.pt2", **overrides)
    monkeypatch.setattr(torch._inductor, "aoti_load_package", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(PackageMismatchError, match=re.escape(message)) as info:
        if device == "cuda":  # the registry refuses --device cuda on a machine without one before any package is read
            Pt2Runner(path, device=Device("cuda", 0))
        else:
            load_runner(path, device=device)
    assert "\n" not in str(info.value) and "acfd-export --pt2" in str(info.value)


def test_binding_check_names_both_sides() -> None:
    with pytest.raises(PackageMismatchError, match="compiled for cpu, but --device cuda"):
        check_binding(_meta(), "cuda", torch.__version__, set(), cuda_available=True)
    assert check_binding(_meta(device="cuda"), "auto", torch.__version__, set(), cuda_available=True) == "cuda"
    assert check_binding(_meta(torch_version=torch.__version__.split("+")[0] + "+cu126"), "cpu", torch.__version__, set(), False) == "cpu"


def test_detect_refuses_a_foreign_package_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.cli import detect

    path = fake_package(tmp_path / "m.pt2", torch_version="1.0.0")
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(image)
    rc = detect.main([str(image), "--model", str(path), "--device", "cpu", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "AOTInductor package mismatch" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_export_refuses_what_the_package_cannot_take(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.cli import export

    out = tmp_path / "out"
    assert export.main(["--pt2", "--imgsz", "200", "300", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--pt2: --imgsz 200 300 is below 253 px" in err and "Traceback" not in err
    assert not out.exists()


def test_export_needs_a_compiler_for_pt2(monkeypatch: pytest.MonkeyPatch) -> None:
    from acfd_deploy.export.options import ExportOptions, validate

    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(AcfdError, match="needs a C\\+\\+ compiler"):
        validate(ExportOptions(pt2=True))
    validate(ExportOptions())  # without --pt2 no compiler is needed


# ---------------------------------------------------------------- a real package (compiles C++)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One acfd-export --pt2 of the demo model at a size that is neither square nor a
    multiple of 32, batch 2 (the parity batches then hold 2 images)."""
    import contextlib

    from acfd_deploy.cli import export

    out = tmp_path_factory.mktemp("pt2") / "export"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = export.main(["--pt2", "--imgsz", "289", "357", "--batch", "2", "--out", str(out)])
    assert rc == 0, buffer.getvalue()
    return out, buffer.getvalue()


@pytest.mark.slow
def test_export_lists_the_package_verified(export_dir: tuple[Path, str]) -> None:
    out, printed = export_dir
    manifest = json.loads((out / "export.json").read_text())
    (entry,) = [a for a in manifest["artifacts"] if a["kind"] == "pt2"]
    path = out / entry["path"]
    assert entry["backend"] == "pt2" and entry["precision"] == "fp32" and entry["passed"] is True
    assert entry["verdict"]["rule"] == "tensor" and entry["verdict"]["required"]["score_abs"] == 1e-4
    assert entry["sha256"] == sha256_file(path) and path.name.endswith(".pt2")
    assert entry["details"]["compile_seconds"] > 0 and entry["details"]["ranges"] == RANGES
    assert "AOTInductor fp32" in printed and "compile" in printed
    # verified at sizes and batches the package was not traced at (dynamic shapes, no recompile)
    traced = entry["details"]["trace_shape"]
    parity = manifest["parity_images"]["batches"]
    assert [2, 3, 289, 357] in parity and [2, 3, 480, 645] in parity and traced not in parity
    meta = read_metadata(path)
    assert meta["device"] == "cpu" and meta["torch_version"] == torch.__version__
    assert meta["weights_sha256"] == manifest["weights"]["sha256"]


@pytest.mark.slow
def test_package_matches_the_folded_graph_at_new_sizes(export_dir: tuple[Path, str]) -> None:
    from acfd_deploy.runtime.torch_runner import checkpoint_runner
    from acfd_deploy.verify.compare import tensor_diff

    out, _ = export_dir
    (package,) = out.glob("*.pt2")
    (folded,) = out.glob("*.deploy.pt")
    rng = np.random.default_rng(3)
    with load_runner(package, device="cpu") as runner, checkpoint_runner(folded, device="cpu") as reference:
        assert runner.accepts_torch and runner.min_size == 253 and runner.precision == "fp32"
        for shape in [(3, 3, 261, 403), (2, 3, 517, 299)]:
            images = rng.uniform(0, 255, shape).astype(np.float32)
            diff = tensor_diff(reference.infer(images), runner.infer(images))
            assert diff.ok(1e-4, 1e-4), (shape, diff)
        with pytest.raises(AcfdError, match="height 200 is outside the range 253..4096"):
            runner.infer(np.zeros((1, 3, 200, 300), np.float32))


@pytest.mark.slow
def test_detect_gives_the_folded_models_detections(export_dir: tuple[Path, str], tmp_path: Path) -> None:
    from acfd_deploy.cli import detect, synth

    out, _ = export_dir
    (package,) = out.glob("*.pt2")
    (folded,) = out.glob("*.deploy.pt")
    data = tmp_path / "data"
    assert synth.main(["--out", str(data), "--num", "2", "--seed", "5", "--imgsz", "300", "420", "--no-progress"]) == 0
    rows = {}
    for model in (package, folded):
        target = tmp_path / model.suffix.strip(".")
        args = [str(data / "images"), "--model", str(model), "--device", "cpu", "--imgsz", "300", "420", "--batch", "2"]
        assert detect.main([*args, "--out", str(target), "--no-draw", "--no-progress"]) == 0
        rows[model.suffix] = json.loads((target / "detections.json").read_text())["images"]
    pt2, torch_rows = rows[".pt2"], rows[".pt"]
    assert sum(len(i["detections"]) for i in torch_rows) > 0
    for a, b in zip(pt2, torch_rows):
        assert len(a["detections"]) == len(b["detections"])
        for da, db in zip(a["detections"], b["detections"]):
            assert np.allclose(da["box"], db["box"], atol=0.05) and abs(da["score"] - db["score"]) < 1e-4


@pytest.mark.slow
def test_require_verified_checks_the_packages_sha256(export_dir: tuple[Path, str], tmp_path: Path) -> None:
    """acfd-serve --require-verified: the generic export.json check holds for a .pt2 too."""
    import shutil

    from acfd_deploy.tritonrepo.verified import CHANGED, PASSED, provenance

    out, _ = export_dir
    (package,) = out.glob("*.pt2")
    assert provenance(package).state == PASSED
    copy = tmp_path / "export"
    shutil.copytree(out, copy)
    changed = copy / package.name
    changed.write_bytes(changed.read_bytes() + b"\0")
    state = provenance(changed)
    assert state.state == CHANGED
    with pytest.raises(AcfdError, match="--require-verified refuses"):
        state.require_passed()


@pytest.mark.slow
def test_bench_takes_the_export_folder_with_its_package(export_dir: tuple[Path, str], tmp_path: Path) -> None:
    from acfd_deploy.cli.bench import main

    out, _ = export_dir
    out_json = tmp_path / "bench.json"
    args = ["--export-dir", str(out), "--batch", "2", "--parity", "--json", str(out_json)]
    assert main([*args, "--repeats", "1", "--min-time", "0", "--warmup", "1", "--imgsz", "261", "403", "--no-progress"]) == 0
    rows = [r for r in json.loads(out_json.read_text())["results"] if r["artifact"].endswith(".pt2")]
    assert len(rows) == 1 and rows[0]["parity_ok"] is True and rows[0]["p50_ms"] > 0
