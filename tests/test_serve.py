"""acfd-serve on a real server: PyTriton's bundled tritonserver on free loopback ports.

One acfd-serve process (the bundled demo model: no --model) is shared by the module; the
last test sends it SIGTERM with requests in flight (a later test would start a new one).
Detections are held to acfd-detect's own output for the same files: every detection
scoring at least 0.3 found again with IoU >= 0.99 and a score within 1e-3.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed (pip install 'acfd-deploy[serve]')")

import acfd_deploy  # noqa: E402
from acfd_deploy.errors import AcfdError  # noqa: E402
from acfd_deploy.serve.server import free_port  # noqa: E402
from tests.helpers import bomb_png, encoded, need_triton_server, wait_http_ready  # noqa: E402

need_triton_server(allow_module_level=True)

SCALE = (320, 430)  # a small test scale keeps the CPU time of the module low; the same for the reference
STARTUP_S = 240.0
REPO_ROOT = Path(acfd_deploy.__file__).resolve().parents[1]


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic cartoon scenes with faces, in the formats acfd-detect reads."""
    from acfd_deploy.data.synth import generate_sample, sample_rng

    folder = tmp_path_factory.mktemp("serve-images")
    scenes = [generate_sample(sample_rng(11, i), h, w)[0] for i, (h, w) in enumerate([(480, 640), (360, 500), (400, 300), (300, 420)])]
    exif = Image.fromarray(scenes[0]).getexif()
    exif[0x0112] = 6  # shown rotated: EXIF must be applied on both sides
    alpha = np.full(scenes[1].shape[:2], 255, np.uint8)
    alpha[:, :60] = 0  # a transparent strip, composited over white
    files = {
        "a.jpg": encoded(scenes[0], "JPEG", quality=92, exif=exif),
        "b.png": encoded(np.dstack([scenes[1], alpha]), "PNG"),
        "c.bmp": encoded(scenes[2], "BMP"),
        "d.webp": encoded(scenes[3], "WEBP", quality=90),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


@pytest.fixture(scope="module")
def demo_model() -> Path:
    from acfd_deploy.resources import demo_weights

    try:
        return demo_weights()
    except AcfdError as exc:
        pytest.skip(str(exc))


def _acfd_detect(args: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Run acfd-detect in-process; its detections.json per image name."""
    from acfd_deploy.cli.detect import main

    out = Path(args[args.index("--out") + 1])
    assert main(args) == 0
    records = json.loads((out / "detections.json").read_text())["images"]
    return {
        r["image"]: {
            "boxes": np.asarray([d["box"] for d in r["detections"]], np.float32).reshape(-1, 4),
            "scores": np.asarray([d["score"] for d in r["detections"]], np.float32),
        }
        for r in records
    }


@pytest.fixture(scope="module")
def reference(images: dict[str, Path], demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("serve-reference")
    args = [
        *map(str, images.values()),
        "--model",
        str(demo_model),
        "--imgsz",
        *map(str, SCALE),
        "--no-draw",
        "--no-progress",
        "--out",
        str(out),
    ]
    return _acfd_detect(args)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def assert_same_detections(ref: dict[str, np.ndarray], boxes: np.ndarray, scores: np.ndarray, label: str) -> None:
    """Both ways: each detection >= 0.3 on one side has one on the other with IoU >= 0.99, score within 1e-3."""
    for (b1, s1), (b2, s2), side in (
        ((ref["boxes"], ref["scores"]), (boxes, scores), "served"),
        ((boxes, scores), (ref["boxes"], ref["scores"]), "acfd-detect"),
    ):
        strong = s1 >= 0.3
        assert strong.any() or side == "acfd-detect", f"{label}: no detection >= 0.3 to compare"
        if not strong.any():
            continue
        assert len(b2), f"{label}: {side} has no detections"
        iou = _iou(b1[strong], b2)
        close = np.abs(s1[strong][:, None] - s2[None, :]) <= 1e-3
        found = ((iou >= 0.99) & close).any(axis=1)
        assert found.all(), f"{label}: {int((~found).sum())} detection(s) >= 0.3 not found in {side} output"


# ---------------------------------------------------------------- the shared server


class Served:
    """One acfd-serve process: ``python -m acfd_deploy.cli.serve`` on three free ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: list[int] = []
        self.log = folder / "acfd-serve.log"

    def start(self) -> None:
        self.ports = [free_port() for _ in range(3)]
        cmd = [sys.executable, "-m", "acfd_deploy.cli.serve", "--imgsz", *map(str, SCALE), "--max-queue-delay-us", "20000"]
        cmd += ["--http-port", str(self.ports[0]), "--grpc-port", str(self.ports[1]), "--metrics-port", str(self.ports[2])]
        paths = (str(REPO_ROOT), os.environ.get("PYTHONPATH", ""))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        if wait_http_ready(self.proc, self.http, STARTUP_S, poll_s=0.5):
            return
        self.stop()
        raise AssertionError(f"acfd-serve did not get ready:\n{self.log_tail()}")

    def ensure(self) -> Served:
        """The running server; a new one if a test (SIGTERM) stopped it."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.ports[1]}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[2]}/metrics"

    def client(self) -> Any:
        return grpcclient.InferenceServerClient(self.grpc)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def server(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """acfd-serve without --model serves ``demo_model`` (skips here if it is missing)."""
    handle = Served(tmp_path_factory.mktemp("acfd-serve"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def served(server: Served) -> Served:
    return server.ensure()


def _image_input(payload: list[bytes]) -> list[Any]:
    t = grpcclient.InferInput("image", [len(payload), 1], "BYTES")
    t.set_data_from_numpy(np.asarray(payload, dtype=object).reshape(-1, 1))
    return [t]


def _detections(result: Any, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = int(result.as_numpy("num_dets")[i, 0])
    boxes, scores = result.as_numpy("det_boxes")[i], result.as_numpy("det_scores")[i]
    assert not boxes[n:].any() and not scores[n:].any(), "rows past num_dets must be zero"
    return boxes[:n], scores[:n]


def _stats(client: Any, model: str) -> tuple[int, int]:
    s = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


# ---------------------------------------------------------------- tests


def test_acfd_gives_acfd_detect_detections_under_concurrency(served: Served, images: dict[str, Path], reference: dict) -> None:
    payloads = {name: path.read_bytes() for name, path in images.items()}
    jobs = [("acfd", name) for _ in range(3) for name in payloads]
    before = _stats(served.client(), "acfd")
    local = threading.local()

    def one(job: tuple[str, str]) -> tuple[str, str, Any]:
        if not hasattr(local, "client"):
            local.client = served.client()
        model, name = job
        return model, name, local.client.infer(model, _image_input([payloads[name]]), client_timeout=120)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, jobs))
    for model, name, result in results:
        assert_same_detections(reference[name], *_detections(result), f"{model} {name}")
    # one request may carry several images: the outputs come back in order
    result = served.client().infer("acfd", _image_input([payloads["c.bmp"], payloads["a.jpg"]]))
    assert_same_detections(reference["c.bmp"], *_detections(result, 0), "batch of two [0]")
    assert_same_detections(reference["a.jpg"], *_detections(result, 1), "batch of two [1]")
    inferences, executions = (a - b for a, b in zip(_stats(served.client(), "acfd"), before))
    assert inferences == 14 and executions < inferences, f"no batching: {inferences} images in {executions} executions"


def test_bad_requests_fail_alone_inside_concurrent_batches(served: Served, images: dict[str, Path], reference: dict) -> None:
    client = served.client()
    jpeg = images["a.jpg"].read_bytes()
    done: dict[str, tuple[Any, Any]] = {}
    lock = threading.Condition()

    def submit(key: str, model: str, inputs: list[Any]) -> None:
        def callback(result: Any, error: Any) -> None:
            with lock:
                done[key] = (result, error)
                lock.notify_all()

        client.async_infer(model, inputs, callback, client_timeout=120)

    def raw(name: str, dtype: str, arr: np.ndarray) -> list[Any]:
        t = grpcclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        return [t]

    bad_image = {
        "empty": _image_input([b""]),
        "not an image": _image_input([b"these bytes are no picture"]),
        "truncated": _image_input([jpeg[: len(jpeg) // 3]]),
        "decompression bomb": _image_input([bomb_png()]),
        "expects 'BYTES'": raw("image", "FP32", np.zeros((1, 1), np.float32)),
        "shape": raw("image", "BYTES", np.asarray([[jpeg, jpeg]], dtype=object)),
    }
    good = np.random.default_rng(0).uniform(0, 255, (1, 3, 192, 256)).astype(np.float32)
    bad_engine = {
        "expects 'FP32'": raw("images", "FP64", good.astype(np.float64)),
        "at least 125": raw("images", "FP32", good[:, :, :100]),
        "NaN": raw("images", "FP32", np.where(np.arange(256) == 5, np.nan, good).astype(np.float32)),
        "[3,-1,-1]|dims|shape": raw("images", "FP32", np.concatenate([good, good[:, :1]], axis=1)),
    }
    for i in range(3):
        submit(f"good{i}", "acfd", _image_input([jpeg]))
    for key, inputs in bad_image.items():
        submit(f"acfd:{key}", "acfd", inputs)
    for i in range(2):
        submit(f"engine-good{i}", "acfd_engine", raw("images", "FP32", good))
    for key, inputs in bad_engine.items():
        submit(f"engine:{key}", "acfd_engine", inputs)
    expected = 5 + len(bad_image) + len(bad_engine)
    with lock:
        assert lock.wait_for(lambda: len(done) == expected, timeout=180), f"only {len(done)} of {expected} answers\n{served.log_tail()}"
    for i in range(3):
        result, error = done[f"good{i}"]
        assert error is None, error
        assert_same_detections(reference["a.jpg"], *_detections(result), f"good request {i} batched with bad ones")
    for key in [*(f"acfd:{k}" for k in bad_image), *(f"engine:{k}" for k in bad_engine)]:
        result, error = done[key]
        assert error is not None, f"{key}: answered without an error"
        assert re.search(key.split(":", 1)[1], str(error)), f"{key}: the error does not name the problem: {error}"
    ref_boxes = None
    for i in range(2):
        result, error = done[f"engine-good{i}"]
        assert error is None, error
        assert result.as_numpy("boxes").shape[0] == 1 and result.as_numpy("boxes").shape[2] == 4
        ref_boxes = result.as_numpy("boxes") if ref_boxes is None else ref_boxes
        np.testing.assert_allclose(result.as_numpy("boxes"), ref_boxes, atol=1e-3)
    # and the server goes on serving
    assert served.proc is not None and served.proc.poll() is None
    assert_same_detections(
        reference["d.webp"], *_detections(client.infer("acfd", _image_input([images["d.webp"].read_bytes()]))), "after bad input"
    )


def test_triton_url_runs_through_the_registry_in_detector_and_acfd_detect(
    served: Served, images: dict[str, Path], reference: dict, tmp_path: Path
) -> None:
    """``triton://`` is one more registry backend: load_runner and acfd-detect --model take
    it with no special case, and give acfd-detect's own detections."""
    from acfd_deploy.pipeline import Detector, DetectorConfig
    from acfd_deploy.runtime.registry import load_runner
    from acfd_deploy.runtime.triton_runner import TritonRunner

    url = f"triton://{served.grpc}/acfd_engine"
    runner = load_runner(url, device="cpu")  # any device is accepted: the server decides where it runs
    assert isinstance(runner, TritonRunner)
    assert runner.precision == "fp32" and runner.max_batch == 8 and runner.min_size == 125
    detector = Detector(runner, DetectorConfig(scales=(SCALE,), batch_size=4))
    for path, dets in detector.detect_paths(images.values()):
        assert not isinstance(dets, Exception), dets
        assert_same_detections(reference[path.name], dets.boxes, dets.scores, f"Detector(load_runner(triton://)) {path.name}")
    via_server = _acfd_detect(
        [*map(str, images.values()), "--model", url, "--imgsz", *map(str, SCALE), "--no-draw", "--no-progress", "--out", str(tmp_path)]
    )
    assert json.loads((tmp_path / "detections.json").read_text())["runner"] == f"triton:{served.grpc}/acfd_engine"
    for name, ref in reference.items():
        assert_same_detections(ref, via_server[name]["boxes"], via_server[name]["scores"], f"acfd-detect triton:// {name}")
    with pytest.raises(AcfdError, match="not an ACFD engine"):
        load_runner(f"triton://{served.grpc}/acfd")
    with pytest.raises(AcfdError, match=r"no ready model 'nope'.*acfd_engine"):
        load_runner(f"triton://{served.grpc}/nope")
    runner.close()


def test_health_statistics_and_metrics_are_open_on_loopback(served: Served, demo_model: Path) -> None:
    base = f"http://{served.http}"
    log = served.log.read_text(errors="replace")
    # the startup line says what is served and what acfd-export said about it (the demo model: nothing)
    assert f"acfd-serve: model: {demo_model}, not verified (no export.json beside it" in log, log[:2000]
    for endpoint in ("HTTPService", "GRPCInferenceService", "Metrics Service"):  # bound to loopback only
        assert re.search(rf"Started {endpoint} at 127\.0\.0\.1:", log), endpoint
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/acfd/ready"):
        with urllib.request.urlopen(base + path, timeout=5) as resp:
            assert resp.status == 200, path
    with urllib.request.urlopen(base + "/v2/models/acfd/stats", timeout=5) as resp:  # no access token needed
        stats = json.loads(resp.read())
    assert stats["model_stats"][0]["name"] == "acfd"
    with urllib.request.urlopen(served.metrics_url, timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'nv_inference_count{model="acfd"' in metrics and 'nv_inference_exec_count{model="acfd"' in metrics


def test_stock_end_to_end_model_via_bls_on_the_bundled_server(
    demo_model: Path, images: dict[str, Path], reference: dict, tmp_path: Path
) -> None:
    """The stock repository's ``acfd`` (engine: bls:acfd_engine) on a server of its own: the
    same detections, a bad request alone in its batch, the network run by acfd_engine."""
    from acfd_deploy.serve.server import TritonServer
    from acfd_deploy.tritonrepo.repository import write_serve_repository

    repo = write_serve_repository(
        tmp_path / "models", demo_model, scales=(SCALE,), max_queue_delay_us=20_000, precision="fp32", threads=1, end_to_end_via_bls=True
    )
    server = TritonServer(repo, tmp_path, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    log = tmp_path / "tritonserver.log"
    with open(log, "wb") as fh:
        server.stdout, server.stderr = fh, subprocess.STDOUT
        server.start()
    try:
        try:
            server.wait_ready(STARTUP_S)
        except AcfdError as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-3000:]}") from None
        client = grpcclient.InferenceServerClient(server.grpc_url)
        jobs = [*images, "bad", *images]
        payloads = {**{name: path.read_bytes() for name, path in images.items()}, "bad": b"\x89PNG\r\n\x1a\n broken"}

        def one(name: str) -> tuple[str, Any]:
            c = grpcclient.InferenceServerClient(server.grpc_url)
            try:
                return name, c.infer("acfd", _image_input([payloads[name]]), client_timeout=120)
            except Exception as exc:  # noqa: BLE001  (the bad one's error is the answer)
                return name, exc

        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(one, jobs))
        for name, result in results:
            if name == "bad":
                assert isinstance(result, Exception) and "image" in str(result), result
            else:
                assert not isinstance(result, Exception), result
                assert_same_detections(reference[name], *_detections(result), f"acfd via BLS {name}")
        engine_images, _ = _stats(client, "acfd_engine")
        assert engine_images >= 2 * len(images)  # the network ran in acfd_engine, not in acfd
    finally:
        server.stop()


def _ready_status(http: str) -> int | str:
    try:
        with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError as exc:  # draining Triton resets new connections
        return type(exc).__name__


def test_sigterm_drains_in_flight_requests(served: Served, images: dict[str, Path], reference: dict) -> None:
    """SIGTERM to acfd-serve with requests in flight: readiness stops answering 200 at once
    (a balancer's health check takes the replica out while it drains), every request in
    flight is answered correctly, then it exits 0 within 30 s. (Last in the module: it
    stops the shared server.)"""
    client = served.client()
    answers: list[tuple[Any, Any]] = []
    answered_at: list[float] = []
    lock = threading.Condition()

    def callback(result: Any, error: Any) -> None:
        with lock:
            answers.append((result, error))
            answered_at.append(time.monotonic())
            lock.notify_all()

    # a few seconds of work queued at once, and no more: Triton's 25 s exit timeout must also
    # cover unloading the models, which takes long on a loaded 2-core machine
    n, per_request = 4, 4
    jpeg = images["a.jpg"].read_bytes()
    for _ in range(n):
        client.async_infer("acfd", _image_input([jpeg] * per_request), callback, client_timeout=120)
    with lock:  # the first answer: the server is busy, and holds the rest
        assert lock.wait_for(lambda: len(answers) >= 1, timeout=120), served.log_tail()
        in_flight = n - len(answers)
    assert in_flight > 0, "every request was answered before SIGTERM: nothing was in flight"
    sent = time.monotonic()
    assert served.proc is not None
    assert _ready_status(served.http) == 200
    served.proc.send_signal(signal.SIGTERM)
    not_ready_at = None
    while served.proc.poll() is None and time.monotonic() - sent < 35:
        if not_ready_at is None and _ready_status(served.http) != 200:
            not_ready_at = time.monotonic()
        time.sleep(0.05)
    code = served.proc.wait(timeout=max(1.0, 35 - (time.monotonic() - sent)))
    elapsed = time.monotonic() - sent
    with lock:
        assert lock.wait_for(lambda: len(answers) == n, timeout=10)
    errors = [str(e) for _, e in answers if e is not None]
    assert not errors, f"in-flight requests failed on SIGTERM: {errors}\n{served.log_tail()}"
    for result, _ in answers:
        for i in range(per_request):
            assert_same_detections(reference["a.jpg"], *_detections(result, i), "drained request")
    assert code == 0 and elapsed < 30, (code, elapsed)
    assert not_ready_at is not None and not_ready_at - sent < 1.0, "readiness still 200 a second after SIGTERM"
    assert not_ready_at < max(answered_at), "readiness turned false only after the drain (a balancer would keep routing)"
    assert "acfd-serve: stopped" in served.log.read_text(errors="replace")
    with pytest.raises(Exception):  # noqa: B017  (gone: any client error will do)
        client.is_server_live(client_timeout=2)
