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
from acfd_deploy.errors import AcfdError

PROG = "acfd-serve"


_port = number(int, "a port number", 1, 65535)
_microseconds = number(int, "a whole number of microseconds", 0)
_seconds = number(float, "a positive number of seconds", 1e-3)
_drain = number(int, "a whole number of seconds", 1, 3600)
_count = number(int, "a whole number", 0)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    from acfd_deploy.tritonrepo.pbtxt import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US

    parser = make_parser(
        prog,
        "Serve the acfd-detect pipeline with Triton Inference Server (PyTriton's bundled tritonserver, started here).\n"
        "Model 'acfd' takes an image file's bytes and returns its detections; 'acfd_engine' is the raw network,\n"
        "for triton:// clients (acfd-detect, acfd-eval, acfd-bench --model triton://HOST:PORT/acfd_engine).\n"
        "With an end-to-end model (NAME.e2e.onnx, acfd-export --end2end), 'acfd' only decodes before the graph and\n"
        "'acfd_e2e' takes decoded uint8 pixels [n, H, W, 3] in place of 'acfd_engine'.\n"
        "SIGTERM or Ctrl-C: health checks and new connections fail at once, requests in flight are answered, then it\n"
        "exits 0 (within --drain-timeout and 4 s). --print-k8s prints Kubernetes manifests instead. See docs/serving.md.",
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
    server.add_argument(
        "--drain-timeout",
        type=_drain,
        default=25,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take before the server exits anyway (default: 25; killed 4 s later)",
    )
    k8s = parser.add_argument_group("Kubernetes")
    k8s.add_argument(
        "--print-k8s",
        action="store_true",
        help="print Kubernetes manifests (Deployment, Service, PodDisruptionBudget, HPA, PVC) that run acfd-serve with these "
        "flags on the export folder mounted at /models, for kubectl apply -f -; starts no server",
    )
    k8s.add_argument("--k8s-image", default="acfd-serve:latest", metavar="IMAGE", help="the acfd-serve image they name (you build it)")
    k8s.add_argument("--k8s-gpus", type=_count, default=0, metavar="N", help="nvidia.com/gpu per pod (default: 0)")
    return parser


def _print_k8s(args: argparse.Namespace) -> int:
    """The manifests for this command line; the model file's sha256 rolls the pods when it changes."""

    from acfd_deploy.fileio import require_file, sha256_file
    from acfd_deploy.k8s import K8sOptions, serve_workload
    from acfd_deploy.k8s.render import serve_stream
    from acfd_deploy.resources import demo_weights

    if args.model is not None and "://" in args.model:
        raise AcfdError("--print-k8s serves a model file on the pod's volume, not a URL")
    path = require_file(args.model, "model file") if args.model is not None else demo_weights()
    extra = ["--max-batch", str(args.max_batch), "--max-queue-delay-us", str(args.max_queue_delay_us)]
    extra += ["--instances", str(args.instances), "--device", args.device, "--conf", str(args.conf)]
    extra += ["--ms-test"] if args.ms_test else ["--imgsz", *map(str, args.imgsz)]
    extra += ["--keep-ratio"] if args.keep_ratio else []
    opts = K8sOptions(image=args.k8s_image, gpus=args.k8s_gpus, drain_timeout_s=args.drain_timeout)
    work = serve_workload(path.name if args.model is not None else None, sha256_file(path), opts, extra)
    sys.stdout.write(serve_stream(opts, work))
    return 0


def _body(args: argparse.Namespace, prog: str) -> int:
    from acfd_deploy.serve.app import ServeOptions, serve

    if args.print_k8s:
        return _print_k8s(args)
    options = options_from_args(
        ServeOptions, args, scales=scales_from_args(args), ready_timeout_s=args.ready_timeout, drain_timeout_s=args.drain_timeout
    )
    return serve(options, prog=prog)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, lambda args: _body(args, prog), build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())
