"""Serving the end-to-end artifact (acfd-export --end2end): ``acfd_e2e`` in the stock-server
repository (no Python backend: its config.pbtxt parsed as Triton's ModelConfig, its file
run through our own runner, since the bundled server cannot load onnxruntime_onnx), the
pixel handler's per-request errors, and acfd-serve --model NAME.e2e.onnx on the bundled
server (acfd: bytes in, only decoding in Python; acfd_e2e: decoded pixels in).

The e2e file is the bundled demo model wrapped at one small test scale (320x430), so the
module builds one network and runs small images.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import acfd_deploy
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import sha256_file
from acfd_deploy.pipeline.io import decode_image
from acfd_deploy.runtime.registry import load_runner
from acfd_deploy.serve.handlers import PixelsHandler, RequestError
from tests.helpers import encoded, need_triton_server, wait_http_ready

SCALE = (320, 430)
REPO_ROOT = Path(acfd_deploy.__file__).resolve().parents[1]


def parse_config(path: Path):  # noqa: ANN201
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _entry(path: Path, passed: bool, end2end: bool) -> dict[str, Any]:
    digest = sha256_file(path)
    return {
        "name": f"ONNX{' e2e' if end2end else ''} fp32",
        "kind": "onnx",
        "backend": "onnxruntime",
        "precision": "fp32",
        "path": path.name,
        "files": [{"path": path.name, "size": path.stat().st_size, "sha256": digest}],
        "sha256": digest,
        "passed": passed,
        "verdict": {"rule": "end2end" if end2end else "tensor", "status": "pass" if passed else "fail", "passed": passed},
        **({"details": {"end2end": True, "scales": [list(SCALE)]}} if end2end else {}),
    }


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An acfd-export folder: the demo model's raw ONNX and its end-to-end graph at SCALE,
    both listed as passed in export.json (the layout acfd-export --end2end writes)."""
    from acfd_deploy import load_model, reparameterize
    from acfd_deploy.export.end2end import wrap_end_to_end
    from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata
    from acfd_deploy.model.anchors import min_input_size
    from acfd_deploy.resources import demo_weights

    model = reparameterize(load_model(demo_weights()))
    raw = export_onnx(model)
    set_metadata(raw, {"precision": "fp32"})
    out = tmp_path_factory.mktemp("e2e-export")
    raw_path = save_onnx(raw, out / "demo.onnx")
    e2e = wrap_end_to_end(raw, (SCALE,), min_side=min_input_size(model.config), pixel_mean=tuple(model.config.pixel_mean))
    e2e_path = save_onnx(e2e, out / "demo.e2e.onnx")
    manifest = {"manifest_version": 2, "artifacts": [_entry(raw_path, True, False), _entry(e2e_path, True, True)]}
    (out / "export.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    """Cartoon scenes with faces, sizes not multiples of 32."""
    from acfd_deploy.data.synth import generate_sample, sample_rng

    return [generate_sample(sample_rng(11, i), h, w)[0] for i, (h, w) in enumerate([(333, 517), (333, 517), (290, 401)])]


@pytest.fixture(scope="module")
def e2e_runner(export_dir: Path) -> Iterator[Any]:
    runner = load_runner(str(export_dir / "demo.e2e.onnx"), device="cpu")
    yield runner
    runner.close()


# ---------------------------------------------------------------- stock repository


def test_stock_repository_serves_the_e2e_file_with_no_python(export_dir: Path, scenes: list[np.ndarray], tmp_path: Path) -> None:
    from tritonclient.grpc import model_config_pb2

    from acfd_deploy.export.exporter import write_triton_repository
    from acfd_deploy.export.options import ExportOptions
    from acfd_deploy.tritonrepo.readme import E2E_CLIENT

    repo = write_triton_repository(ExportOptions(triton_repo=tmp_path / "repo"), export_dir)
    assert {p.name for p in repo.iterdir()} >= {"acfd_engine", "acfd_e2e"}
    # the raw network stays the engine, the e2e file is acfd_e2e, each byte for byte
    assert (repo / "acfd_engine" / "1" / "model.onnx").read_bytes() == (export_dir / "demo.onnx").read_bytes()
    served = repo / "acfd_e2e" / "1" / "model.onnx"
    assert served.read_bytes() == (export_dir / "demo.e2e.onnx").read_bytes()
    cfg = parse_config(repo / "acfd_e2e" / "config.pbtxt")
    assert cfg.name == "acfd_e2e" and cfg.platform == "onnxruntime_onnx" and cfg.backend == "" and cfg.max_batch_size == 8
    assert cfg.default_model_filename == "model.onnx" and cfg.HasField("dynamic_batching")
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [("images", model_config_pb2.TYPE_UINT8, [-1, -1, 3])]
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.output] == [
        ("num_dets", model_config_pb2.TYPE_INT32, [1]),
        ("det_boxes", model_config_pb2.TYPE_FP32, [100, 4]),
        ("det_scores", model_config_pb2.TYPE_FP32, [100]),
    ]
    assert cfg.parameters["sha256"].string_value == sha256_file(served)
    warm = cfg.model_warmup[0].inputs["images"]
    assert warm.data_type == model_config_pb2.TYPE_UINT8 and list(warm.dims)[2] == 3
    assert "same H and W" in (repo / "acfd_e2e" / "config.pbtxt").read_text()
    record = json.loads((repo / "acfd-repository.json").read_text())
    assert record["models"] == ["acfd_engine", "acfd_e2e"] and record["acfd_e2e"]["platform"] == "onnxruntime_onnx"
    readme = (repo / "README.md").read_text()
    assert "no Python backend" in readme and E2E_CLIENT.splitlines()[-1] in readme
    # the served file through our own runner, a batch in the config's layout ([b] + dims)
    batch = np.stack(scenes[:2])
    assert [list(batch.shape[1:])] == [[d if d > 0 else s for d, s in zip(cfg.input[0].dims, batch.shape[1:])]]
    with load_runner(str(served), device="cpu") as runner:
        num, boxes, scores = runner.infer_detections(batch)
    assert num.dtype == np.int32 and num.shape == (2, 1) and boxes.shape == (2, 100, 4) and scores.shape == (2, 100)
    assert int(num[0, 0]) > 0 and not boxes[0, int(num[0, 0]) :].any()
    assert boxes[0, : int(num[0, 0]), 2].max() <= batch.shape[2] + 1  # input-image pixels, not the 430-wide scale


def test_stock_repository_refuses_a_raw_or_changed_file_as_acfd_e2e(export_dir: Path, tmp_path: Path) -> None:
    from acfd_deploy.tritonrepo.stock import write_model_repository

    with pytest.raises(AcfdError, match="raw network, not an end-to-end graph"):
        write_model_repository(tmp_path / "a", export_dir / "demo.onnx", e2e_artifact=export_dir / "demo.onnx")
    changed = tmp_path / "changed"
    shutil.copytree(export_dir, changed)
    with open(changed / "demo.e2e.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(AcfdError, match="changed after it was verified"):
        write_model_repository(tmp_path / "b", changed / "demo.onnx", e2e_artifact=changed / "demo.e2e.onnx")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything is written
    # an export without --end2end: no acfd_e2e, the engine as before
    from acfd_deploy.tritonrepo.e2e_repo import choose_e2e_artifact
    from acfd_deploy.tritonrepo.stock import choose_artifact

    manifest = json.loads((export_dir / "export.json").read_text())
    assert choose_artifact(export_dir).name == "demo.onnx" and choose_e2e_artifact(export_dir).name == "demo.e2e.onnx"
    manifest["artifacts"] = manifest["artifacts"][:1]
    (changed / "export.json").write_text(json.dumps(manifest))
    assert choose_e2e_artifact(changed) is None


# ---------------------------------------------------------------- the pixel handler


class Counting:
    """The runner, counting infer_detections calls and their batch sizes."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.calls = runner, []
        self.outputs, self.name = runner.outputs, runner.name

    def infer_detections(self, images: np.ndarray) -> Any:
        self.calls.append(images.shape)
        return self.runner.infer_detections(images)


def test_pixel_handler_groups_sizes_and_answers_each_bad_request_alone(e2e_runner: Any, scenes: list[np.ndarray]) -> None:
    a, b, c = (s[None] for s in scenes)
    bad = {
        "UINT8": a.astype(np.float32),
        "RGB": np.concatenate([a, a[..., :1]], axis=3),
        "shape": a[0],
        "empty": a[:, :0],
        "no input": None,
    }
    counting = Counting(e2e_runner)
    handler = PixelsHandler(counting)  # type: ignore[arg-type]
    results = handler([a, *bad.values(), c, b])
    good = [results[0], results[-2], results[-1]]
    for key, result in zip(bad, results[1:-2]):
        assert isinstance(result, RequestError) and not result.internal, key
        assert re.search(key, str(result), re.I), f"{key}: {result}"
    assert sorted(counting.calls) == [(1, 290, 401, 3), (2, 333, 517, 3)]  # a and b (one size) in one call
    for got, image in zip(good, (a, c, b)):
        assert not isinstance(got, RequestError), got
        num, boxes, scores = e2e_runner.infer_detections(image)
        np.testing.assert_array_equal(got["num_dets"], num)
        np.testing.assert_allclose(got["det_boxes"], boxes, atol=1e-4)
        np.testing.assert_allclose(got["det_scores"], scores, atol=1e-6)
    with pytest.raises(AcfdError, match="raw network"):
        PixelsHandler(load_runner(str(REPO_ROOT / "acfd_deploy/assets/acfd-tiny-demo.pth"), device="cpu"))


# ---------------------------------------------------------------- acfd-serve --model NAME.e2e.onnx


def _wait_ready(proc: subprocess.Popen[bytes], http: str, log: Path, timeout: float = 180.0) -> None:
    if not wait_http_ready(proc, http, timeout):
        raise AssertionError(f"acfd-serve did not get ready:\n{log.read_text(errors='replace')[-3000:]}")


def test_acfd_serve_runs_the_e2e_engine_and_fails_bad_requests_alone(
    export_dir: Path, scenes: list[np.ndarray], e2e_runner: Any, tmp_path: Path
) -> None:
    need_triton_server()
    import tritonclient.grpc as grpcclient

    from acfd_deploy.cli.serve import main as serve_main
    from acfd_deploy.serve.server import free_port
    from acfd_deploy.tritonrepo.readme import E2E_CLIENT

    model = str(export_dir / "demo.e2e.onnx")
    # the graph's scales are fixed at export: asking for others is refused before a server starts
    assert serve_main(["--model", model, "--imgsz", "480", "480", "--http-port", str(free_port())]) == 2

    ports = [free_port() for _ in range(3)]
    cmd = [sys.executable, "-m", "acfd_deploy.cli.serve", "--model", model, "--max-queue-delay-us", "20000", "--device", "cpu"]
    cmd += ["--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    log = tmp_path / "acfd-serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_ready(proc, f"127.0.0.1:{ports[0]}", log)
        for _ in range(100):  # acfd-serve prints its ready line right after the server's
            if "ready in" in log.read_text():
                break
            time.sleep(0.1)
        text = log.read_text()
        assert "'acfd_e2e' (decoded uint8 pixels" in text and "acfd_engine" not in text.split("ready in")[-1]
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports[1]}")
        files = [encoded(scenes[0], "PNG"), encoded(scenes[2], "JPEG", quality=90)]
        done: dict[str, tuple[Any, Any]] = {}
        cond = threading.Condition()

        def submit(key: str, model_name: str, name: str, dtype: str, arr: np.ndarray) -> None:
            t = grpcclient.InferInput(name, list(arr.shape), dtype)
            t.set_data_from_numpy(arr)

            def callback(result: Any, error: Any) -> None:
                with cond:
                    done[key] = (result, error)
                    cond.notify_all()

            client.async_infer(model_name, [t], callback, client_timeout=120)

        def image_bytes(data: bytes) -> np.ndarray:
            return np.asarray([[data]], dtype=object)

        a = scenes[0][None]
        submit("bytes0", "acfd", "image", "BYTES", image_bytes(files[0]))
        submit("bytes1", "acfd", "image", "BYTES", image_bytes(files[1]))
        submit("acfd:truncated|cannot|image", "acfd", "image", "BYTES", image_bytes(files[1][: len(files[1]) // 3]))
        submit("pixels0", "acfd_e2e", "images", "UINT8", a)
        submit("pixels1", "acfd_e2e", "images", "UINT8", a)
        bad = {
            "e2e:UINT8": ("FP32", a.astype(np.float32)),
            "e2e:3|dims|shape": ("UINT8", np.concatenate([a, a[..., :1]], axis=3)),
            "e2e:rank|dims|shape|expected": ("UINT8", a[..., None]),
            "e2e:empty|0": ("UINT8", a[:, :0]),
        }
        for key, (dtype, arr) in bad.items():
            submit(key, "acfd_e2e", "images", dtype, arr)
        with cond:
            assert cond.wait_for(lambda: len(done) == 5 + len(bad), timeout=120), f"{len(done)} answers\n{log.read_text()[-3000:]}"
        for key in ["acfd:truncated|cannot|image", *bad]:
            result, error = done[key]
            assert error is not None, f"{key}: answered without an error"
            assert re.search(key.split(":", 1)[1], str(error), re.I), f"{key}: {error}"
        # acfd: only decoding in Python, the graph does the rest: our runner's detections on the decoded file
        for key, data in (("bytes0", files[0]), ("bytes1", files[1])):
            result, error = done[key]
            assert error is None, error
            num, boxes, scores = e2e_runner.infer_detections(decode_image(data)[None])
            n = int(num[0, 0])
            assert n > 0 and int(result.as_numpy("num_dets")[0, 0]) == n
            np.testing.assert_allclose(result.as_numpy("det_boxes")[0, :n], boxes[0, :n], atol=1e-3)
            np.testing.assert_allclose(result.as_numpy("det_scores")[0, :n], scores[0, :n], atol=1e-5)
        expected = e2e_runner.infer_detections(a)
        for key in ("pixels0", "pixels1"):
            result, error = done[key]
            assert error is None, error
            np.testing.assert_array_equal(result.as_numpy("num_dets"), expected[0])
            np.testing.assert_allclose(result.as_numpy("det_boxes"), expected[1], atol=1e-3)
        # the README's client, as written, against acfd_e2e (the stock server's contract)
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(files[1])
        script = E2E_CLIENT.replace('"localhost:8000", "photo.jpg"', f'"127.0.0.1:{ports[0]}", {str(photo)!r}')
        assert script != E2E_CLIENT
        printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
        num, boxes, scores = e2e_runner.infer_detections(decode_image(files[1])[None])
        rows = [list(map(float, line.split())) for line in printed.splitlines()]
        assert len(rows) == int(num[0, 0])
        np.testing.assert_allclose(np.asarray(rows)[:, 0], scores[0, : len(rows)], atol=2e-3)
        assert proc.poll() is None, "the server died"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
