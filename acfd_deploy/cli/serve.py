"""acfd-serve: the acfd-detect pipeline behind Triton Inference Server.

    acfd-serve --model exports/acfd-tiny-demo.onnx

Writes a model repository (``acfd``: image bytes -> detections; ``acfd_engine``: the raw
network) into a temporary folder and runs PyTriton's bundled ``tritonserver`` on it, bound
to 127.0.0.1 unless ``--host`` says otherwise. SIGTERM or Ctrl-C: in-flight requests
finish, then it exits (within 30 s). Exit codes: 0 stopped by a signal, 1 the server died
on its own, 2 bad usage or bad input (nothing started).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from acfd_deploy.cli.common import EXIT_CHECK_FAILED, EXIT_OK, make_parser, positive_int, run
from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.detector import DEFAULT_SCALE, MS_TEST_SCALES
from acfd_deploy.pipeline.preprocess import DEFAULT_MIN_SIZE

PROG = "acfd-serve"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of microseconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more microseconds, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from acfd_deploy import __version__
    from acfd_deploy.serve.repository import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US

    p = make_parser(
        PROG,
        "Serve the acfd-detect pipeline with Triton Inference Server: model 'acfd' takes an image file's bytes and "
        "returns its detections; 'acfd_engine' is the raw network (for triton:// clients). Health, readiness, "
        "statistics on the HTTP port, Prometheus metrics on the metrics port.",
    )
    if not any("--version" in a.option_strings for a in p._actions):
        p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--model",
        default=None,
        help="weights: .pth/.pt/.safetensors (PyTorch), .onnx (ONNX Runtime) or .plan (TensorRT); "
        "default: the bundled demo model, models/acfd-tiny-demo.pth",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface; think before exposing it)")
    p.add_argument("--http-port", type=_port, default=8000, help="HTTP/REST port (health, readiness, statistics, inference)")
    p.add_argument("--grpc-port", type=_port, default=8001, help="gRPC port")
    p.add_argument("--metrics-port", type=_port, default=8002, help="Prometheus metrics port (/metrics)")
    p.add_argument("--max-batch", type=positive_int, default=DEFAULT_MAX_BATCH, help="largest batch Triton forms from concurrent requests")
    p.add_argument(
        "--max-queue-delay-us",
        type=_non_negative,
        default=DEFAULT_QUEUE_DELAY_US,
        help="how long a request may wait for others to fill a batch (microseconds)",
    )
    p.add_argument("--instances", type=positive_int, default=1, help="model instances (processes) per model")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--ms-test", action="store_true", help="the paper's multi-scale test: 480x645, 640x860 and 800x1075, merged")
    scale.add_argument(
        "--imgsz",
        nargs=2,
        type=positive_int,
        default=list(DEFAULT_SCALE),
        metavar=("H", "W"),
        help="single test scale (the paper's middle one), as acfd-detect",
    )
    p.add_argument("--keep-ratio", action="store_true", help="keep each image's aspect ratio (as acfd-detect --keep-ratio)")
    p.add_argument(
        "--conf",
        type=float,
        default=0.0,
        help="leave out detections scoring below this (default: none, so 'acfd' returns what acfd-detect writes to its CSV/JSON)",
    )
    p.add_argument("--device", default="cpu", help="PyTorch device for .pth models (cpu, cuda, cuda:1)")
    p.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for the models to load")
    return p


class _Stop:
    """SIGTERM / SIGINT -> one graceful stop of the server; the main loop waits for it."""

    def __init__(self) -> None:
        self.requested = False
        self.server: object | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        terminate = getattr(self.server, "terminate", None)
        if terminate is not None:
            terminate()


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.runtime.loader import load_runner
    from acfd_deploy.serve.repository import write_serve_repository
    from acfd_deploy.serve.server import TritonServer, find_tritonserver
    from acfd_deploy.serve.stubenv import stub_numpy_site

    if not 0.0 <= args.conf <= 1.0:
        raise AcfdError(f"--conf must be in [0, 1], got {args.conf}")
    ports = {args.http_port, args.grpc_port, args.metrics_port}
    if len(ports) != 3:
        raise AcfdError(
            f"--http-port, --grpc-port and --metrics-port must differ (got {args.http_port}, {args.grpc_port}, {args.metrics_port})"
        )
    find_tritonserver()  # before the slow part: a missing extra is the first thing to say
    stub_numpy_site()
    if args.model is None:
        from acfd_deploy.checkpoint import DEMO_WEIGHTS, demo_weights

        demo = demo_weights()
        if demo is None:
            raise AcfdError(f"--model is needed (no bundled {DEMO_WEIGHTS} here)")
        args.model = str(demo)
        print(f"{PROG}: no --model given: using the bundled demo model {demo} (trained on synthetic faces only)", file=sys.stderr)
    # load it once here: a bad file is one line and exit 2, not a model-load failure in the server's log
    runner = load_runner(args.model, device=args.device)
    precision = str(getattr(runner, "precision", "unknown"))
    model = getattr(runner, "model", None)
    min_size = int(getattr(model, "min_size", getattr(runner, "min_size", 0)) or 0)
    close = getattr(runner, "close", None)
    if callable(close):
        close()
    del runner, model

    scales = MS_TEST_SCALES if args.ms_test else (tuple(args.imgsz),)
    threads = max(1, (os.cpu_count() or 1) // args.instances)
    stage = Path(tempfile.mkdtemp(prefix="acfd-serve-"))
    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        repo = write_serve_repository(
            stage / "models",
            args.model,
            max_batch=args.max_batch,
            max_queue_delay_us=args.max_queue_delay_us,
            instances=args.instances,
            scales=scales,
            keep_ratio=args.keep_ratio,
            conf=args.conf,
            device=args.device,
            precision=precision,
            threads=threads,
            min_size=min_size or DEFAULT_MIN_SIZE,
        )
        server = TritonServer(
            repo, stage, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port
        )
        stop.server = server
        server.start()
        print(f"{PROG}: starting tritonserver on {args.host} (models acfd, acfd_engine from {args.model})", file=sys.stderr, flush=True)
        started = time.monotonic()
        server.wait_ready(args.ready_timeout, should_stop=lambda: stop.requested)
        if not stop.requested:
            print(
                f"{PROG}: ready in {time.monotonic() - started:.0f} s: HTTP http://{server.http_url}, gRPC {server.grpc_url}, "
                f"metrics {server.metrics_url}; model 'acfd' (image bytes -> detections), 'acfd_engine' "
                f"(triton://{server.grpc_url}/acfd_engine)",
                flush=True,
            )
        code = server.wait()
        if stop.requested:
            print(f"{PROG}: stopped (tritonserver exit code {code})", file=sys.stderr)
            return EXIT_OK
        print(f"{PROG}: error: tritonserver exited on its own with code {code}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    finally:
        if stop.server is not None:
            stop.server.stop()  # type: ignore[attr-defined]
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(stage, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
