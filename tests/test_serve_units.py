"""Serving without a server: model repositories (every config.pbtxt parsed as Triton's
ModelConfig), request handling (one bad request stays one), image bytes decoded as
acfd-detect reads files, triton:// URLs through the runner registry, what export.json says
about a served model (--require-verified), the launcher's environment, acfd-serve's flags."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import acfd_deploy
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import sha256_file
from acfd_deploy.pipeline.detector import Detections, Detector, DetectorConfig
from acfd_deploy.pipeline.io import ImageLoadError, decode_image, load_image
from acfd_deploy.runtime.base import Runner
from acfd_deploy.serve.handlers import MAX_DETECTIONS, EndToEndHandler, EngineHandler, RequestError, pack_detections, run_isolated
from acfd_deploy.tritonrepo.params import ModelParams, parse_scales
from acfd_deploy.tritonrepo.pbtxt import pbtxt_string, preferred_batch_sizes
from acfd_deploy.tritonrepo.repository import write_serve_repository
from acfd_deploy.tritonrepo.stock import choose_artifact, write_model_repository
from tests.helpers import bomb_png, encoded, gradient


def parse_config(path: Path):  # noqa: ANN201
    """A config.pbtxt as Triton's ModelConfig protobuf (the server's own parser's schema)."""
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def params_of(config) -> dict[str, str]:  # noqa: ANN001
    return {k: v.string_value for k, v in config.parameters.items()}


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in ONNX file with acfd-export's metadata (the writers read only that)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["boxes"])],
        "stand_in",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
    )
    proto = helper.make_model(graph)
    for key, value in {"precision": "fp32", "input": json.dumps({"min_side": 125})}.items():
        proto.metadata_props.add(key=key, value=value)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(proto, str(path))
    return path


def manifest_entry(path: Path, passed: bool | None, rule: str = "tensor", reason: str = "", **extra: object) -> dict:
    """One artifact as acfd-export's export.json (version 2) lists it."""
    status = {True: "pass", False: "fail", None: "n/a"}[passed]
    return {
        "name": "ONNX fp32",
        "kind": "onnx",
        "backend": "onnxruntime",
        "precision": "fp32",
        "path": path.name,
        "files": [{"path": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}],
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
        "passed": passed,
        "verdict": {"rule": rule if passed is not None else "none", "status": status, "passed": passed, "reason": reason},
        **extra,
    }


def export_folder(folder: Path, onnx_file: Path, passed: bool | None, **kw: object) -> Path:
    """An acfd-export folder holding one ONNX file with the given verdict; the file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / "acfd-tiny.onnx"
    artifact.write_bytes(onnx_file.read_bytes())
    (folder / "export.json").write_text(json.dumps({"manifest_version": 2, "artifacts": [manifest_entry(artifact, passed, **kw)]}))
    return artifact


# ---------------------------------------------------------------- repositories


def test_serve_repository_configs_parse_and_say_what_runs(tmp_path: Path, onnx_file: Path) -> None:
    repo = write_serve_repository(
        tmp_path / "repo",
        onnx_file,
        max_batch=8,
        max_queue_delay_us=1500,
        instances=2,
        scales=((320, 430),),
        conf=0.25,
    )
    assert {p.name for p in repo.iterdir()} == {"acfd", "acfd_engine"}
    for name in ("acfd", "acfd_engine"):
        assert (repo / name / "1" / "model.py").is_file()
        cfg = parse_config(repo / name / "config.pbtxt")
        assert cfg.name == name and cfg.backend == "python" and cfg.max_batch_size == 8
        assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 1500
        assert cfg.instance_group[0].count == 2
    engine = parse_config(repo / "acfd_engine" / "config.pbtxt")
    assert [(t.name, list(t.dims)) for t in engine.input] == [("images", [3, -1, -1])]
    assert [(t.name, list(t.dims)) for t in engine.output] == [("boxes", [-1, 4]), ("scores", [-1])]
    assert params_of(engine)["artifact"] == str(onnx_file.resolve())
    e2e = parse_config(repo / "acfd" / "config.pbtxt")
    from tritonclient.grpc import model_config_pb2

    assert e2e.input[0].name == "image" and e2e.input[0].data_type == model_config_pb2.TYPE_STRING and list(e2e.input[0].dims) == [1]
    assert [(t.name, list(t.dims)) for t in e2e.output] == [
        ("num_dets", [1]),
        ("det_boxes", [MAX_DETECTIONS, 4]),
        ("det_scores", [MAX_DETECTIONS]),
    ]
    params = ModelParams.from_parameters(params_of(e2e))
    assert params.scales == ((320, 430),) and params.conf == 0.25
    assert params.bls_model is None and params.artifact == str(onnx_file.resolve())  # the network runs in acfd's own process
    via_bls = write_serve_repository(tmp_path / "bls", onnx_file, end_to_end_via_bls=True)
    bls = ModelParams.from_parameters(params_of(parse_config(via_bls / "acfd" / "config.pbtxt")))
    assert bls.bls_model == "acfd_engine" and bls.artifact == ""
    # the header says which machinery runs the model
    assert "Python backend" in (repo / "acfd_engine" / "config.pbtxt").read_text()
    # the end-to-end model is the stock repository's, file for file
    stock = write_model_repository(tmp_path / "stock", onnx_file, max_batch=8, end_to_end=True)
    assert (stock / "acfd" / "1" / "model.py").read_bytes() == (repo / "acfd" / "1" / "model.py").read_bytes()


def test_stock_repository_onnx_is_the_verified_file(tmp_path: Path, onnx_file: Path) -> None:
    export = tmp_path / "export"
    artifact = export_folder(export, onnx_file, True)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    repo = write_model_repository(
        tmp_path / "repo", choose_artifact(export, "fp32"), precision="fp32", imgsz=(640, 640), instances=2, end_to_end=True
    )
    model = repo / "acfd_engine" / "1" / "model.onnx"
    assert model.read_bytes() == artifact.read_bytes()
    engine = parse_config(repo / "acfd_engine" / "config.pbtxt")
    assert engine.platform == "onnxruntime_onnx" and engine.default_model_filename == "model.onnx"
    assert engine.max_batch_size == 8 and list(engine.dynamic_batching.preferred_batch_size) == [4, 8]
    assert list(engine.input[0].dims) == [3, -1, -1] and list(engine.output[0].dims) == [-1, 4]
    assert engine.instance_group[0].count == 2  # no kind: GPUs where the server has them, else CPU
    assert list(engine.model_warmup[0].inputs["images"].dims) == [3, 640, 640]
    assert params_of(engine)["precision"] == "fp32" and params_of(engine)["sha256"] == digest
    e2e = parse_config(repo / "acfd" / "config.pbtxt")
    assert e2e.backend == "python" and ModelParams.from_parameters(params_of(e2e)).bls_model == "acfd_engine"
    readme = (repo / "README.md").read_text()
    for needed in (
        "tritonserver --model-repository",
        "triton://localhost:8001/acfd_engine",
        "replicas",
        "model-control-mode",
        "nv_inference_exec_count",
    ):
        assert needed in readme
    record = json.loads((repo / "acfd-repository.json").read_text())
    assert record["sha256"] == digest and record["platform"] == "onnxruntime_onnx"
    # written again over itself: fine; over a folder holding something else: refused
    write_model_repository(repo, artifact, precision="fp32")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(AcfdError, match="already holds notes.txt"):
        write_model_repository(tmp_path / "other", artifact)
    with pytest.raises(AcfdError, match="is fp32, not int8"):
        write_model_repository(tmp_path / "r2", artifact, precision="int8")


def test_stock_repository_refuses_changed_or_failed_artifacts(tmp_path: Path, onnx_file: Path) -> None:
    artifact = export_folder(tmp_path / "export", onnx_file, True)
    artifact.write_bytes(artifact.read_bytes() + b"\0")  # changed after the export verified it
    with pytest.raises(AcfdError, match="changed after it was verified"):
        write_model_repository(tmp_path / "repo", artifact)
    assert not (tmp_path / "repo").exists()  # refused before anything was written
    failed = export_folder(tmp_path / "failed", onnx_file, False, rule="detection", reason="80% of 120 found")
    with pytest.raises(AcfdError, match=r"FAILED verification by acfd-export \(detection rule: 80% of 120 found"):
        write_model_repository(tmp_path / "repo2", failed)
    unverified = export_folder(tmp_path / "unverified", onnx_file, None, reason="too few faces")
    with pytest.raises(AcfdError, match=r"not verified by acfd-export \(n/a: too few faces\)"):
        write_model_repository(tmp_path / "repo3", unverified)
    with pytest.raises(AcfdError, match="no verified fp32"):
        choose_artifact(tmp_path / "failed", "fp32")
    with pytest.raises(AcfdError, match="no verified int8"):
        choose_artifact(tmp_path / "export", "int8")


def test_stock_repository_plan_takes_batch_from_its_profile(tmp_path: Path) -> None:
    from acfd_deploy.runtime.plan import SIDECAR_FORMAT

    plan = tmp_path / "m.fp16.plan"
    plan.write_bytes(b"not a real engine, but copied byte for byte")
    sidecar = {
        "format": SIDECAR_FORMAT,
        "precision": "fp16",
        "profile": {"min": [1, 3, 125, 125], "opt": [4, 3, 640, 640], "max": [4, 3, 800, 1075]},
        "tensorrt_version": "10.9.0",
        "gpu": "NVIDIA H200",
        "compute_capability": "9.0",
    }
    Path(f"{plan}.json").write_text(json.dumps(sidecar))
    repo = write_model_repository(tmp_path / "repo", plan)
    cfg = parse_config(repo / "acfd_engine" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.default_model_filename == "model.plan"
    assert cfg.max_batch_size == 4 and list(cfg.dynamic_batching.preferred_batch_size) == [2, 4]
    from tritonclient.grpc import model_config_pb2

    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert list(cfg.model_warmup[0].inputs["images"].dims) == [3, 640, 640]
    assert params_of(cfg)["precision"] == "fp16" and params_of(cfg)["min_size"] == "125"
    assert (repo / "acfd_engine" / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert "TensorRT 10.9.0" in (repo / "README.md").read_text()
    with pytest.raises(AcfdError, match="built for batches up to 4"):
        write_model_repository(tmp_path / "repo2", plan, max_batch=8)


def test_pbtxt_helpers() -> None:
    assert pbtxt_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert preferred_batch_sizes(1) == [] and preferred_batch_sizes(2) == [2] and preferred_batch_sizes(16) == [8, 16]
    assert parse_scales("480x645,640x860") == ((480, 645), (640, 860))
    with pytest.raises(AcfdError):
        parse_scales("640by860")


# ---------------------------------------------------------------- decoding


def test_decoded_bytes_equal_acfd_detect_file_reading(tmp_path: Path) -> None:
    arr = gradient(60, 80)
    rgba = np.dstack([arr, np.linspace(0, 255, 80, dtype=np.uint8)[None, :].repeat(60, 0)])
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    files = {
        "a.jpg": encoded(arr, "JPEG", quality=90, exif=exif),
        "b.png": encoded(rgba, "PNG"),
        "c.bmp": encoded(arr, "BMP"),
        "d.webp": encoded(arr, "WEBP", quality=80),
        "e.png": encoded((arr[..., 0].astype(np.uint16) * 257), "PNG"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert np.array_equal(decode_image(data), load_image(tmp_path / name)), name
    assert decode_image(files["a.jpg"]).shape == (80, 60, 3)  # EXIF rotation applied


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"GIF89a but not really an image at all", "not an image|truncated"),
        (b"hello", "not an image"),
        (bomb_png(), "decompression bomb"),
    ],
)
def test_decode_errors_name_the_problem(data: bytes, why: str) -> None:
    with pytest.raises(ImageLoadError, match=why):
        decode_image(data)


def test_truncated_file_is_refused() -> None:
    data = encoded(gradient(200, 200), "JPEG", quality=95)
    with pytest.raises(ImageLoadError, match="truncated"):
        decode_image(data[: len(data) // 2])


# ---------------------------------------------------------------- handlers


class FakeRunner(Runner):
    """Boxes at fixed tensor pixels; raises for a batch holding a 'poisoned' image."""

    name, precision = "fake", "fp32"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(images))
        if (images == 7.0).all(axis=(1, 2, 3)).any():
            raise RuntimeError("poisoned input")
        b = len(images)
        boxes = np.tile(np.asarray([[10, 10, 60, 60], [70, 20, 120, 90]], np.float32), (b, 1, 1))
        scores = np.tile(np.asarray([0.9, 0.2], np.float32), (b, 1))
        return boxes, scores


def test_engine_handler_answers_each_request() -> None:
    runner = FakeRunner()
    good = np.zeros((2, 3, 130, 140), np.float32)
    poisoned = np.full((1, 3, 130, 140), 7.0, np.float32)
    inputs: list[np.ndarray | None] = [
        good,
        np.zeros((1, 3, 100, 140), np.float32),  # too small
        np.zeros((1, 3, 130, 140), np.float64),  # wrong dtype
        np.full((1, 3, 130, 140), np.nan, np.float32),
        poisoned,
        np.zeros((1, 3, 130, 140), np.float32),
        None,
    ]
    results = EngineHandler(runner, min_size=125)(inputs)
    assert isinstance(results[0], tuple) and results[0][0].shape == (2, 2, 4)
    assert isinstance(results[5], tuple) and results[5][1].shape == (1, 2)
    for i, why in ((1, "at least 125"), (2, "FP32"), (3, "NaN"), (4, "poisoned input"), (6, "no input")):
        assert isinstance(results[i], RequestError) and why in str(results[i]), (i, results[i])
    bad_runner, bad_input = results[4], results[1]
    assert isinstance(bad_runner, RequestError) and isinstance(bad_input, RequestError)
    assert bad_runner.internal and not bad_input.internal
    assert runner.calls[0] == 4  # one batch of the three valid requests, then each alone
    assert sorted(runner.calls[1:]) == [1, 1, 2]


def test_run_isolated_reruns_only_on_failure() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        if 3 in items:
            raise ValueError("three")
        return [i * 10 for i in items]

    assert run_isolated([1, 2], run) == [10, 20] and calls == [[1, 2]]
    out = run_isolated([1, 3, 2], run)
    assert out[0] == 10 and out[2] == 20 and isinstance(out[1], RequestError) and "three" in str(out[1])


def test_end_to_end_handler_isolates_bad_images() -> None:
    runner = FakeRunner()
    detector = Detector(runner, DetectorConfig(scales=((128, 160),), batch_size=8), min_size=125)
    handler = EndToEndHandler(detector, conf=0.5)
    good = np.asarray([[encoded(gradient(64, 80), "PNG")]], dtype=object)
    pair = np.asarray([[encoded(gradient(32, 40), "JPEG")], [encoded(gradient(50, 50), "BMP")]], dtype=object)
    results = handler(
        [good, np.asarray([[b""]], dtype=object), pair, np.asarray([[bomb_png()]], dtype=object), np.asarray([["text"]], dtype=object)]
    )
    assert runner.calls == [3]  # the three good images of two requests: one runner call
    assert isinstance(results[0], dict) and results[0]["num_dets"].tolist() == [[1]]  # 0.2 < conf 0.5 left out
    assert results[0]["det_boxes"].shape == (1, MAX_DETECTIONS, 4) and results[0]["det_scores"].shape == (1, MAX_DETECTIONS)
    # boxes in the original image's pixels: 10/160*80 = 5
    np.testing.assert_allclose(results[0]["det_boxes"][0, 0], [5.0, 5.0, 30.0, 30.0], atol=1e-4)
    assert not results[0]["det_boxes"][0, 1:].any()
    assert isinstance(results[2], dict) and results[2]["num_dets"].shape == (2, 1)
    assert "empty" in str(results[1]) and "decompression bomb" in str(results[3]) and "got text" in str(results[4])


def test_pack_detections_zero_pads() -> None:
    d = Detections(np.asarray([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32), np.asarray([0.9, 0.1], np.float32), 10, 10)
    out = pack_detections([d], conf=0.0, rows=4)
    assert out["num_dets"].dtype == np.int32 and out["num_dets"].tolist() == [[2]]
    assert out["det_scores"].tolist() == [[pytest.approx(0.9), pytest.approx(0.1), 0.0, 0.0]]


# ---------------------------------------------------------------- runner, launcher, CLI


def test_triton_urls_and_unreachable_server() -> None:
    from acfd_deploy.runtime.triton_runner import check_engine_signature, parse_triton_url

    assert parse_triton_url("triton://127.0.0.1:9001/acfd_engine") == ("127.0.0.1", 9001, "acfd_engine", "")
    assert parse_triton_url("triton://gpu-node/acfd_engine/3") == ("gpu-node", 8001, "acfd_engine", "3")
    for bad in ("triton://host", "triton://h:1/a/b/c", "triton://h:1/m/latest", "http://h:1/m"):
        with pytest.raises(AcfdError):
            parse_triton_url(bad)
    meta = {"name": "acfd", "inputs": [{"name": "image", "datatype": "BYTES", "shape": ["-1", "1"]}], "outputs": []}
    with pytest.raises(AcfdError, match="not an ACFD engine.*image BYTES"):
        check_engine_signature(meta)
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    from acfd_deploy.runtime.triton_runner import TritonRunner
    from acfd_deploy.serve.server import free_port

    with pytest.raises(AcfdError, match="cannot reach a Triton server"):
        TritonRunner(f"triton://127.0.0.1:{free_port()}/acfd_engine", timeout_s=3)


def test_launcher_environment(tmp_path: Path) -> None:
    from acfd_deploy.serve import server, stubenv

    dist = server.TritonDist(Path("/x/bin/tritonserver"), Path("/x/backends/python"), Path("/x/stub"), Path("/x/libs"))
    env = server.server_environment(dist, tmp_path / "stubenv" / "bin", base={"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"})
    libdir = sysconfig.get_config_var("LIBDIR")
    assert env["LD_LIBRARY_PATH"].split(":") == [libdir, "/x/libs", "/opt/lib"]
    assert env["PATH"].split(":") == [str(tmp_path / "stubenv" / "bin"), "/usr/bin"]
    lines = stubenv.pth_lines(Path("/numpy1"))
    assert lines[0] == "/numpy1" and lines[1] == str(Path(acfd_deploy.__file__).resolve().parents[1])
    assert lines[-1].startswith("import site; site.addsitedir(")


def test_stub_numpy_missing_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from acfd_deploy.serve import stubenv

    monkeypatch.setenv("ACFD_TRITON_STUB_SITE", str(tmp_path / "empty"))
    if stubenv.running_numpy_major() < 2:
        assert stubenv.stub_numpy_site() is None
        return
    with pytest.raises(AcfdError, match=r"needs numpy<2.*stubenv --install"):
        stubenv.stub_numpy_site()
    fake = tmp_path / "site"
    (fake / "numpy").mkdir(parents=True)
    (fake / "numpy" / "__init__.py").write_text("")
    (fake / "numpy-1.26.4.dist-info").mkdir()
    monkeypatch.setenv("ACFD_TRITON_STUB_SITE", str(fake))
    assert stubenv.stub_numpy_site() == fake
    bin_dir = stubenv.stage_stub_env(tmp_path / "stage")
    assert (bin_dir / "python3").resolve() == Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    assert (bin_dir.parent / "pyvenv.cfg").read_text().startswith("home = ")


def test_triton_urls_go_through_the_runner_registry(tmp_path: Path) -> None:
    """``triton://`` is a registry backend like any other: no special case in any command,
    no server needed to list it, and any --device is accepted (the server decides)."""
    from acfd_deploy.cli.common import model_help
    from acfd_deploy.runtime.registry import artifact_precision, backend_for, load_runner

    url = "triton://127.0.0.1:8001/acfd_engine"
    assert backend_for(url).name == "triton" and backend_for(url).factory == "acfd_deploy.runtime.triton_runner:TritonRunner"
    assert artifact_precision(url) == "unknown"  # known once connected (the model config), not before
    assert "triton:// (triton)" in model_help(True)
    with pytest.raises(AcfdError, match="unknown URL scheme http://"):
        backend_for("http://127.0.0.1:8000/acfd_engine")
    # the URL reaches TritonRunner: a bad one is its one-line error, whatever the device
    with pytest.raises(AcfdError, match="expected triton://host:port/model"):
        load_runner("triton://127.0.0.1:8001", device="cuda:3")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    from acfd_deploy.serve.server import free_port

    for device in ("auto", "cpu", "cuda:1"):
        with pytest.raises(AcfdError, match="cannot reach a Triton server"):
            load_runner(f"triton://127.0.0.1:{free_port()}/acfd_engine", device=device, timeout_s=3)
    # and acfd-serve can front another server: the URL is kept as the served model
    repo = write_serve_repository(tmp_path / "repo", url)
    assert params_of(parse_config(repo / "acfd_engine" / "config.pbtxt"))["artifact"] == url


def test_provenance_reads_the_manifest_beside_the_model(tmp_path: Path, onnx_file: Path) -> None:
    from acfd_deploy.tritonrepo.verified import provenance

    passed = export_folder(tmp_path / "pass", onnx_file, True)
    assert provenance(passed).passed
    assert provenance(passed).describe() == f"model: {passed}, verified by acfd-export: pass (tensor rule)"
    failed = export_folder(tmp_path / "fail", onnx_file, False, rule="ap", reason="AP50 drop 0.031 > 0.01")
    assert provenance(failed).describe().startswith(f"model: {failed}, FAILED verification by acfd-export (ap rule: AP50 drop 0.031")
    unverified = export_folder(tmp_path / "na", onnx_file, None, reason="fewer than 500 faces")
    assert provenance(unverified).status() == "not verified by acfd-export (n/a: fewer than 500 faces)"
    changed = export_folder(tmp_path / "changed", onnx_file, True)
    changed.write_bytes(changed.read_bytes()[:-1])
    assert provenance(changed).state == "changed" and "sha256 differs" in provenance(changed).status()
    unlisted = tmp_path / "pass" / "other.onnx"
    unlisted.write_bytes(onnx_file.read_bytes())
    assert provenance(unlisted).status() == f"not verified: {tmp_path / 'pass' / 'export.json'} does not list it"
    assert "no export.json beside it" in provenance(onnx_file).status()
    assert provenance("triton://h:8001/acfd_engine").status() == "on another server: not verified here"
    # the same file listed twice (another backend's options): the default backend's entry decides
    other = manifest_entry(passed, False, backend="openvino", runner_options={"precision": "bf16"})
    manifest = json.loads((tmp_path / "pass" / "export.json").read_text())
    (tmp_path / "pass" / "export.json").write_text(json.dumps({**manifest, "artifacts": [other, *manifest["artifacts"]]}))
    assert provenance(passed).passed
    # an export.json from before manifest version 2 has no verdicts to read: said, never taken as a pass
    (tmp_path / "pass" / "export.json").write_text(json.dumps({"artifacts": [{"path": passed.name, "parity": {"passed": True}}]}))
    assert provenance(passed).state == "old-manifest" and "export again" in provenance(passed).status()
    with pytest.raises(AcfdError, match="older acfd-export"):
        choose_artifact(tmp_path / "pass")
    (tmp_path / "pass" / "export.json").write_text("{ not json")
    with pytest.raises(AcfdError, match="not readable JSON"):
        provenance(passed)


def test_require_verified_refuses_before_anything_starts(
    tmp_path: Path, onnx_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from acfd_deploy.cli.serve import main
    from acfd_deploy.serve import server

    started: list[str] = []

    def no_server() -> None:
        started.append("find_tritonserver")
        raise AcfdError("stand-in: the server would start here")

    monkeypatch.setattr(server, "find_tritonserver", no_server)
    cases = {
        "failed": (export_folder(tmp_path / "fail", onnx_file, False, rule="detection", reason="90% of 150"), "FAILED verification"),
        "n/a": (export_folder(tmp_path / "na", onnx_file, None, reason="too few detections"), r"n/a: too few detections"),
        "no manifest": (onnx_file, "no export.json beside it"),
    }
    for name, (model, why) in cases.items():
        assert main(["--model", str(model), "--require-verified"]) == 2, name
        err = capsys.readouterr().err
        assert f"acfd-serve: model: {model}, " in err, err  # the one line, before the refusal
        assert re.search(rf"acfd-serve: error: --require-verified refuses {re.escape(str(model))}: .*{why}.*lists as passed", err), err
    assert main(["--require-verified"]) == 2  # the bundled demo model is no export artifact
    assert "--require-verified" in capsys.readouterr().err
    assert not started, "a refused model must not get as far as the server"
    # a passed artifact goes on (to the stand-in), and says its verdict; without the flag, so does a failed one
    passed = export_folder(tmp_path / "pass", onnx_file, True)
    assert main(["--model", str(passed), "--require-verified"]) == 2
    err = capsys.readouterr().err
    assert f"acfd-serve: model: {passed}, verified by acfd-export: pass (tensor rule)" in err and "stand-in" in err
    assert main(["--model", str(cases["failed"][0])]) == 2
    assert "FAILED verification" in capsys.readouterr().err and len(started) == 2


def test_serve_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.cli.serve import main

    assert main(["--conf", "2"]) == 2
    assert "--conf must be in [0, 1]" in capsys.readouterr().err
    assert main(["--http-port", "9000", "--grpc-port", "9000"]) == 2
    assert "must differ" in capsys.readouterr().err
    assert main(["--model", "nowhere.onnx"]) == 2
    assert "acfd-serve: error: model file not found: nowhere.onnx" in capsys.readouterr().err
    assert main(["--model", "weights.bin"]) == 2
    assert "unknown model type '.bin'" in capsys.readouterr().err
    for bad in (
        ["--max-batch", "0"],
        ["--http-port", "70000"],
        ["--max-queue-delay-us", "-1"],
        ["--device", "gpu"],
        ["--imgsz", "1", "2", "3"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2, bad
        assert "(see --help)" in capsys.readouterr().err


def test_serve_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from acfd_deploy.cli.main import main as acfd_main
    from acfd_deploy.cli.serve import build_parser, main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"acfd-serve (acfd-deploy) {acfd_deploy.__version__}"
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    text = capsys.readouterr().out
    assert exc.value.code == 0 and text.startswith("usage: acfd-serve ")
    for noise in ("(default: None)", "(default: False)", "(default: True)", "(default: (", "(default: ["):
        assert noise not in text, noise
    for flag in ("--model PATH|URL", "--imgsz H [W]", "--device {auto,cpu,cuda,cuda:N}", "--require-verified", "--max-batch N"):
        assert flag in text, flag
    assert "bundled demo model" in text and "models/acfd-tiny-demo.pth" not in text
    parser = build_parser()
    assert [a for a in parser._actions if not a.help or a.help == argparse.SUPPRESS] == []
    defaults = {a.dest: a.default for a in parser._actions}
    assert defaults["imgsz"] == (640, 860) and defaults["device"] == "auto" and defaults["model"] is None
    assert (defaults["http_port"], defaults["grpc_port"], defaults["metrics_port"]) == (8000, 8001, 8002)
    # the umbrella command: acfd serve takes the same flags and says its own name
    with pytest.raises(SystemExit) as exc:
        acfd_main(["serve", "--help"])
    assert capsys.readouterr().out.startswith("usage: acfd serve ")
    assert acfd_main(["serve", "--conf", "5"]) == 2
    assert "acfd serve: error: --conf must be in [0, 1]" in capsys.readouterr().err
