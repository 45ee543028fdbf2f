"""acfd-serve: the acfd-detect pipeline behind Triton Inference Server.

    acfd-serve --model exports/acfd-tiny-demo.onnx --require-verified

Flag parsing only: :func:`acfd_deploy.serve.serve` does the rest (docs/serving.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from acfd_deploy.cli.common import (
    add_device,
    add_scale_args,
    finite_float,
    make_parser,
    model_help,
    number,
    options_from_args,
    positive_int,
    run,
    scales_from_args,
)

PROG = "acfd-serve"


_port = number(int, "a port number", 1, 65535)
_microseconds = number(int, "a whole number of microseconds", 0)
_seconds = number(float, "a positive number of seconds", 1e-3)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    from acfd_deploy.tritonrepo.pbtxt import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US

    parser = make_parser(
        prog,
        "Serve the acfd-detect pipeline with Triton Inference Server (PyTriton's bundled tritonserver, started here).\n"
        "Model 'acfd' takes an image file's bytes and returns its detections; 'acfd_engine' is the raw network,\n"
        "for triton:// clients (acfd-detect, acfd-eval, acfd-bench --model triton://HOST:PORT/acfd_engine).\n"
        "With an end-to-end model (NAME.e2e.onnx, acfd-export --end2end), 'acfd' only decodes before the graph and\n"
        "'acfd_e2e' takes decoded uint8 pixels [n, H, W, 3] in place of 'acfd_engine'.\n"
        "SIGTERM or Ctrl-C: requests in flight are answered, then it exits 0 (within 30 s). See docs/serving.md.",
    )
    model = parser.add_argument_group("model and pipeline")
    model.add_argument("--model", metavar="PATH|URL", help=model_help(True))
    model.add_argument(
        "--require-verified",
        action="store_true",
        help="refuse (exit 2) a model that the export.json beside it does not list as passed, with the same sha256",
    )
    add_scale_args(model, ", as acfd-detect")
    model.add_argument(
        "--conf",
        type=finite_float,
        default=0.0,
        metavar="SCORE",
        help="leave out detections scoring below SCORE (default: 0, every detection acfd-detect writes to its CSV and JSON)",
    )
    add_device(model, help="where the served model runs (a triton:// model runs where its own server puts it)")

    server = parser.add_argument_group("server")
    server.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to bind (default: 127.0.0.1, this machine only); 0.0.0.0 serves every interface: "
        "put it behind something that authenticates",
    )
    server.add_argument("--http-port", type=_port, default=8000, metavar="PORT", help="HTTP/REST: health, readiness, statistics, inference")
    server.add_argument("--grpc-port", type=_port, default=8001, metavar="PORT", help="gRPC inference")
    server.add_argument("--metrics-port", type=_port, default=8002, metavar="PORT", help="Prometheus metrics (/metrics)")
    server.add_argument(
        "--max-batch", type=positive_int, default=DEFAULT_MAX_BATCH, metavar="N", help="largest batch Triton forms from concurrent requests"
    )
    server.add_argument(
        "--max-queue-delay-us",
        type=_microseconds,
        default=DEFAULT_QUEUE_DELAY_US,
        metavar="US",
        help="microseconds a request may wait for others to fill a batch",
    )
    server.add_argument(
        "--instances", type=positive_int, default=1, metavar="N", help="processes per model, each with its own copy of the model"
    )
    server.add_argument(
        "--ready-timeout", type=_seconds, default=300.0, metavar="SECONDS", help="how long the models may take to load (default: 300)"
    )
    return parser


def _body(args: argparse.Namespace, prog: str) -> int:
    from acfd_deploy.serve.app import ServeOptions, serve

    options = options_from_args(ServeOptions, args, scales=scales_from_args(args), ready_timeout_s=args.ready_timeout)
    return serve(options, prog=prog)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, lambda args: _body(args, prog), build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())
