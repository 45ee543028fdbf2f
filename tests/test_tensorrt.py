"""TensorRT: the pure parts (profile, the plan's sidecar, engine-precision check)
everywhere; real engine builds only where TensorRT and a CUDA GPU exist (marker
``tensorrt``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from acfd_deploy.errors import AcfdError
from acfd_deploy.export.fp16 import PrecisionError
from acfd_deploy.export.tensorrt import TEST_SCALES, check_engine_precision, engine_precisions, engine_profile, tensorrt_status
from acfd_deploy.runtime.plan import (
    SIDECAR_FORMAT,
    EngineMismatchError,
    check_sidecar,
    make_sidecar,
    plan_precision,
    profile_covers,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

# ---------------------------------------------------------------- profile


def test_profile_covers_batch_and_the_papers_three_test_scales() -> None:
    profile = engine_profile((640, 640), batch=8, min_side=125)
    assert profile == {"min": [1, 3, 125, 125], "opt": [8, 3, 640, 640], "max": [8, 3, 800, 1075]}
    for h, w in TEST_SCALES:
        for b in (1, 5, 8):
            assert profile_covers(profile, (b, 3, h, w))
    assert not profile_covers(profile, (9, 3, 640, 640))
    assert not profile_covers(profile, (1, 3, 124, 640))
    assert not profile_covers(profile, (1, 3, 801, 640))


def test_profile_grows_with_a_larger_imgsz_and_rejects_small_ones() -> None:
    assert engine_profile((1088, 1920), batch=1, min_side=125)["max"] == [1, 3, 1088, 1920]
    with pytest.raises(AcfdError, match="minimum side"):
        engine_profile((100, 640), batch=1, min_side=125)
    with pytest.raises(AcfdError):
        engine_profile((640, 640), batch=0, min_side=125)


# ---------------------------------------------------------------- sidecar


def _sidecar(tmp_path: Path, **over: object) -> tuple[Path, dict]:
    onnx_path = tmp_path / "m.fp16.onnx"
    onnx_path.write_bytes(b"onnx")
    plan = tmp_path / "m.fp16.plan"
    plan.write_bytes(b"plan")
    kwargs = dict(
        trt_version="10.13.0.35",
        gpu={"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
        precision="fp16",
        profile=engine_profile((640, 640), 4, 125),
        onnx_path=onnx_path,
        onnx_sha256="ab" * 32,
        plan_sha256="cd" * 32,
        workspace_bytes=4 << 30,
    )
    kwargs.update(over)
    sidecar = make_sidecar(**kwargs)  # type: ignore[arg-type]
    write_sidecar(plan, sidecar)
    return plan, sidecar


def test_sidecar_round_trip_holds_what_an_engine_is_bound_to(tmp_path: Path) -> None:
    plan, sidecar = _sidecar(tmp_path)
    assert sidecar_path(plan) == Path(f"{plan}.json") and sidecar_path(plan).is_file()
    loaded = read_sidecar(plan)
    assert loaded == json.loads(json.dumps(sidecar)) and loaded["format"] == SIDECAR_FORMAT
    assert plan_precision(plan) == "fp16"
    for key in ("tensorrt_version", "gpu", "compute_capability", "precision", "profile", "onnx_sha256", "plan_sha256"):
        assert key in loaded
    check_sidecar(loaded, "10.13.0.35", {"gpu": "NVIDIA H100 PCIe", "compute_capability": "9.0"}, "cd" * 32)


@pytest.mark.parametrize(
    "trt_version,cc,plan_sha,fragment",
    [
        ("11.4.0", "9.0", None, "TensorRT 10.13.0.35, this is TensorRT 11.4.0"),
        ("10.13.0.35", "8.9", None, "compute capability 8.9"),
        ("10.13.0.35", "9.0", "ee" * 32, "does not match"),
    ],
)
def test_sidecar_mismatch_says_rebuild(tmp_path: Path, trt_version: str, cc: str, plan_sha: str | None, fragment: str) -> None:
    plan, _ = _sidecar(tmp_path)
    with pytest.raises(EngineMismatchError, match="rebuild with acfd-export") as info:
        check_sidecar(read_sidecar(plan), trt_version, {"gpu": "Some GPU", "compute_capability": cc}, plan_sha)
    assert fragment in str(info.value)


def test_missing_or_foreign_sidecar_says_rebuild(tmp_path: Path) -> None:
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"p")
    with pytest.raises(EngineMismatchError, match="rebuild"):
        read_sidecar(plan)
    assert plan_precision(plan) == "unknown"  # a listing says what it cannot tell
    Path(f"{plan}.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(EngineMismatchError, match="rebuild"):
        read_sidecar(plan)
    Path(f"{plan}.json").write_text("{not json")
    with pytest.raises(EngineMismatchError, match="not readable JSON"):
        read_sidecar(plan)


UNKNOWN_GPU = {"gpu": "unknown", "compute_capability": "unknown"}


@pytest.mark.parametrize(
    "built,here",
    [
        ("unknown", UNKNOWN_GPU),  # neither side could read its GPU: no evidence of a match
        ("9.0", UNKNOWN_GPU),  # no GPU can be read now
        ("unknown", {"gpu": "NVIDIA H100 PCIe", "compute_capability": "9.0"}),  # the sidecar was written blind
    ],
)
def test_unknown_compute_capability_never_matches(tmp_path: Path, built: str, here: dict[str, str]) -> None:
    plan, _ = _sidecar(tmp_path, gpu={"gpu": "unknown" if built == "unknown" else "NVIDIA H100", "compute_capability": built})
    with pytest.raises(EngineMismatchError, match="compute capability"):
        check_sidecar(read_sidecar(plan), "10.13.0.35", here, "cd" * 32)


def test_unknown_tensorrt_version_and_missing_plan_hash_never_match(tmp_path: Path) -> None:
    gpu = {"gpu": "NVIDIA H100 PCIe", "compute_capability": "9.0"}
    plan, sidecar = _sidecar(tmp_path, trt_version="unknown")
    with pytest.raises(EngineMismatchError, match="TensorRT unknown"):
        check_sidecar(read_sidecar(plan), "unknown", gpu)
    plan, sidecar = _sidecar(tmp_path)
    del sidecar["plan_sha256"]
    with pytest.raises(EngineMismatchError, match="does not match its sidecar's sha256"):
        check_sidecar(sidecar, "10.13.0.35", gpu, "cd" * 32)
    check_sidecar(read_sidecar(plan), "10.13.0.35", gpu, "cd" * 32)  # the same, complete, is accepted


# ---------------------------------------------------------------- engine precision


def _layer(name: str, kind: str, fmt: str) -> dict:
    return {
        "Name": name,
        "LayerType": kind,
        "Inputs": [{"Name": f"{name}_in", "Location": "Device", "Dimensions": [1, 32, 80, 80], "Format/Datatype": fmt}],
        "Outputs": [{"Name": f"{name}_out", "Location": "Device", "Dimensions": [1, 32, 80, 80], "Format/Datatype": fmt}],
        "TacticName": "sm90_xmma_fprop",
    }


def _info(conv_formats: list[str]) -> str:
    layers = [_layer("Reformatting CopyNode for Input Tensor 0", "Reformat", "Row major linear FP32")]
    layers += [_layer(f"/backbone/conv{i}", "CaskConvolution", f) for i, f in enumerate(conv_formats)]
    layers.append(_layer("/decode/Exp", "PointWiseV2", "Row major linear FP32"))
    return json.dumps({"Layers": layers, "Bindings": ["images", "boxes", "scores"]})


def test_engine_precision_accepts_an_fp16_engine() -> None:
    fmts = ["Channel major FP16 format where channel % 8 == 0"] * 9 + ["Row major linear FP32"] * 2  # head convs stay fp32
    summary = check_engine_precision(_info(fmts), "fp16")
    assert summary["compute_layers"] == {"fp16": 9, "fp32": 2}
    assert summary["fraction"] == pytest.approx(9 / 11, abs=1e-4)


def test_engine_precision_accepts_int8_in_every_spelling() -> None:
    fmts = ["Thirty-two wide channel vectorized row major Int8 format."] * 5 + ["Int8"] * 3 + ["Half"]
    assert check_engine_precision(_info(fmts), "int8")["compute_layers"]["int8"] == 8
    assert engine_precisions(_info(["Float"]))["compute_layers"] == {"fp32": 1}


def test_engine_precision_fails_loudly_when_fp16_was_silently_fp32() -> None:
    with pytest.raises(PrecisionError, match="asked for fp16 but runs 0 of 6"):
        check_engine_precision(_info(["Row major linear FP32"] * 6), "fp16")
    with pytest.raises(PrecisionError, match="int8"):  # mostly fp16 is not an int8 engine
        check_engine_precision(_info(["Half"] * 8 + ["Int8"]), "int8")


def test_engine_precision_needs_detailed_information() -> None:
    with pytest.raises(PrecisionError, match="DETAILED"):
        check_engine_precision(json.dumps({"Layers": ["conv1 + relu1", "conv2"], "Bindings": []}), "fp16")
    no_shapes = _info(["N/A due to dynamic shapes"] * 3).replace("Row major linear FP32", "N/A due to dynamic shapes")
    with pytest.raises(PrecisionError, match="no layer data types"):
        check_engine_precision(no_shapes, "fp16")


# ---------------------------------------------------------------- availability


def test_status_and_runner_without_tensorrt_are_clear(tmp_path: Path) -> None:
    ok, why = tensorrt_status()
    if ok:
        pytest.skip("TensorRT and a GPU are present here")
    assert why  # "not installed: pip install ..." or "no CUDA GPU"
    from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner

    plan, _ = _sidecar(tmp_path)
    with pytest.raises(AcfdError, match=r"acfd-deploy\[tensorrt\]|sidecar|rebuild|GPU"):
        TensorRTRunner(plan)


def test_tensorrt_runner_refuses_the_cpu_before_anything_else(tmp_path: Path) -> None:
    from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner

    plan, _ = _sidecar(tmp_path)
    with pytest.raises(AcfdError, match="runs on an NVIDIA GPU only; --device cpu cannot run it"):
        TensorRTRunner(plan, device="cpu")


# ---------------------------------------------------------------- real engines


@pytest.fixture(scope="module")
def trt_export(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import acfd_deploy
    from acfd_deploy.cli.export import main
    from tests.helpers import write_calib

    tmp = tmp_path_factory.mktemp("trt")
    weights = acfd_deploy.save_checkpoint(tiny_model, tmp / "tiny.pth")
    calib = write_calib(tmp / "calib", count=8, size=(320, 416))
    out = tmp / "out"
    rc = main(["--weights", str(weights), "--fp16", "--int8", "--calib", str(calib), "--imgsz", "320", "416", "--batch", "4",
               "--engine", "tensorrt", "--workspace", "2", "--out", str(out)])  # fmt: skip
    assert rc == 0
    return out


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_built_in_the_requested_precision_and_matches(trt_export: Path, tiny_model: torch.nn.Module, precision: str) -> None:
    from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner
    from acfd_deploy.runtime.torch_runner import TorchRunner
    from acfd_deploy.verify.compare import detection_match
    from acfd_deploy.verify.rules import FP16_MIN_MATCH, INT8_MIN_MATCH
    from tests.helpers import realistic

    plan = trt_export / f"tiny.{precision}.plan"
    sidecar = read_sidecar(plan)
    assert sidecar["precision"] == precision
    assert sidecar["layer_precisions"]["compute_layers"].get(precision, 0) > 0
    runner = TensorRTRunner(plan)
    for batch, h, w in [(3, 480, 645), (1, 800, 1075), (4, 333, 517)]:
        x = realistic(batch, h, w, seed=batch)
        ref = TorchRunner(tiny_model).infer(x)
        out = runner.infer(x)
        match = detection_match(ref, out)
        assert match.reference > 100 and match.rate is not None, match
        assert match.rate >= (FP16_MIN_MATCH if precision != "int8" else INT8_MIN_MATCH), match
    with pytest.raises(AcfdError, match="outside the engine's profile"):
        runner.infer(np.zeros((5, 3, 320, 416), np.float32))
    runner.close()


@pytest.mark.tensorrt
def test_engine_from_another_tensorrt_is_refused(trt_export: Path, tmp_path: Path) -> None:
    import shutil

    from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner

    plan = tmp_path / "tiny.fp32.plan"
    shutil.copy(trt_export / "tiny.fp32.plan", plan)
    sidecar = json.loads(Path(f"{trt_export / 'tiny.fp32.plan'}.json").read_text())
    sidecar["tensorrt_version"] = "9.0.0"
    Path(f"{plan}.json").write_text(json.dumps(sidecar))
    with pytest.raises(EngineMismatchError, match="rebuild with acfd-export"):
        TensorRTRunner(plan)


@pytest.mark.tensorrt
def test_engine_suffix_and_manifest_of_a_tensorrt_export(trt_export: Path, tmp_path: Path) -> None:
    """A plan renamed .engine (with its sidecar) loads through the registry like .plan, and
    the export lists each plan with its sidecar and a passing verdict."""
    import shutil

    from acfd_deploy.manifest import check_folder, read_manifest
    from acfd_deploy.runtime.registry import load_runner

    engine = tmp_path / "tiny.fp16.engine"
    shutil.copy(trt_export / "tiny.fp16.plan", engine)
    shutil.copy(sidecar_path(trt_export / "tiny.fp16.plan"), sidecar_path(engine))
    runner = load_runner(engine)
    assert runner.precision == "fp16" and runner.name.startswith("tensorrt")
    runner.close()  # type: ignore[attr-defined]
    assert check_folder(trt_export) == []
    manifest = read_manifest(trt_export)
    plans = [a for a in manifest["artifacts"] if a["kind"] == "tensorrt"]
    assert {a["precision"] for a in plans} == {"fp32", "fp16", "int8"}
    for a in plans:
        assert a["backend"] == "tensorrt" and a["passed"] is True, a["verdict"]
        assert [f["path"] for f in a["files"]] == [a["path"], f"{a['path']}.json"]
    fp32 = next(a for a in plans if a["precision"] == "fp32")
    assert fp32["verdict"]["rule"] == "tensor" and fp32["verdict"]["required"]["score_abs"] == 1e-3
