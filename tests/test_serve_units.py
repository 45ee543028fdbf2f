"""Serving without a server: model repositories (every config.pbtxt parsed as Triton's
ModelConfig), request handling (one bad request stays one), image bytes decoded as
acfd-detect reads files, triton:// URLs, the launcher's environment, acfd-serve's usage errors."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
import sysconfig
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import acfd_deploy
from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.detector import Detections, Detector, DetectorConfig
from acfd_deploy.pipeline.io import ImageLoadError, load_image
from acfd_deploy.serve.decode import decode_image
from acfd_deploy.serve.handlers import MAX_DETECTIONS, EndToEndHandler, EngineHandler, RequestError, pack_detections, run_isolated
from acfd_deploy.serve.params import ModelParams, parse_scales
from acfd_deploy.serve.repository import (
    choose_artifact,
    pbtxt_string,
    preferred_batch_sizes,
    write_model_repository,
    write_serve_repository,
)


def parse_config(path: Path):  # noqa: ANN201
    """A config.pbtxt as Triton's ModelConfig protobuf (the server's own parser's schema)."""
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def params_of(config) -> dict[str, str]:  # noqa: ANN001
    return {k: v.string_value for k, v in config.parameters.items()}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (900 MP): refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")


def encoded(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(h: int = 30, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.uint8)


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
    export.mkdir()
    artifact = export / "acfd-tiny.fp16.onnx"
    artifact.write_bytes(onnx_file.read_bytes())
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    manifest = {
        "artifacts": [
            {"name": "ONNX fp32", "kind": "onnx", "path": artifact.name, "sha256": digest, "precision": "fp32", "parity": {"passed": True}}
        ]
    }
    (export / "export.json").write_text(json.dumps(manifest))
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
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(onnx_file.read_bytes())
    entry = {"kind": "onnx", "path": "m.onnx", "sha256": "0" * 64, "precision": "fp32", "parity": {"passed": True}}
    (tmp_path / "export.json").write_text(json.dumps({"artifacts": [entry]}))
    with pytest.raises(AcfdError, match="changed after it was verified"):
        write_model_repository(tmp_path / "repo", artifact)
    assert not (tmp_path / "repo" / "acfd_engine" / "1" / "model.onnx").exists()
    entry["parity"] = {"passed": False}
    (tmp_path / "export.json").write_text(json.dumps({"artifacts": [entry]}))
    with pytest.raises(AcfdError, match="failed its parity check"):
        write_model_repository(tmp_path / "repo2", artifact)
    with pytest.raises(AcfdError, match="no verified int8"):
        choose_artifact(tmp_path, "int8")


def test_stock_repository_plan_takes_batch_from_its_profile(tmp_path: Path) -> None:
    from acfd_deploy.export.tensorrt import SIDECAR_FORMAT

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
    arr = _gradient(60, 80)
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
    data = encoded(_gradient(200, 200), "JPEG", quality=95)
    with pytest.raises(ImageLoadError, match="truncated"):
        decode_image(data[: len(data) // 2])


# ---------------------------------------------------------------- handlers


class FakeRunner:
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
    good = np.asarray([[encoded(_gradient(64, 80), "PNG")]], dtype=object)
    pair = np.asarray([[encoded(_gradient(32, 40), "JPEG")], [encoded(_gradient(50, 50), "BMP")]], dtype=object)
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
    from acfd_deploy.runtime.triton_runner import check_engine_signature, is_triton_url, parse_triton_url

    assert is_triton_url("triton://h:1/m") and not is_triton_url("model.onnx")
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


def test_serve_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.cli.serve import main

    assert main(["--conf", "2"]) == 2
    assert "--conf must be in [0, 1]" in capsys.readouterr().err
    assert main(["--http-port", "9000", "--grpc-port", "9000"]) == 2
    assert "must differ" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--max-batch", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and acfd_deploy.__version__ in capsys.readouterr().out
