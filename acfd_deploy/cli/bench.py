"""acfd-bench: batched latency, the 50 ms budget, parity, and a regression gate.

acfd-bench --model out/acfd.onnx out/acfd.int8.onnx --batch 1,8 --imgsz 640 640
acfd-bench --export-dir out --interleave --repeats 5      # ratios between artifacts on a busy machine
acfd-bench --export-dir out --ms-test --batch 1,8,16,32 --budget-ms 50 --parity
acfd-bench --export-dir out --json now.json --baseline benchmarks/baselines/gpu-h100.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from acfd_deploy.cli.common import (
    EXIT_OK,
    add_device,
    add_imgsz,
    make_parser,
    model_help,
    non_negative_float,
    non_negative_int,
    options_from_args,
    positive_float,
    positive_int,
    run,
)
from acfd_deploy.errors import CheckFailed

PROG = "acfd-bench"


def batch_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of batch sizes like 1,8,16, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return values


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    from acfd_deploy.runtime.registry import backends

    p = make_parser(
        prog,
        "Measure latency per image of ACFD artifacts; check the budget, parity and regressions.\n"
        "Exit 0: all checks passed; 1: a check failed; 2: bad input; 3: a bug.",
    )
    what = p.add_argument_group("what to measure")
    what.add_argument("--model", nargs="+", default=[], metavar="PATH|URL", help=model_help(False) + "; several may follow")
    what.add_argument("--export-dir", type=Path, metavar="DIR", help="everything acfd-export wrote there (and its source weights)")
    what.add_argument("--backend", choices=[b.name for b in backends()], help="only artifacts of this backend")
    what.add_argument(
        "--precision",
        choices=["fp32", "fp16", "bf16", "int8"],
        help="only this precision; fp16 also runs checkpoints in half precision (CUDA)",
    )
    add_device(what, help="where PyTorch and ONNX Runtime run")
    what.add_argument(
        "--batch", type=batch_list, default=(1,), metavar="N[,N...]", help="batch sizes to time: images per runner call, comma-separated"
    )
    add_imgsz(what, (640, 640), "network input size (without --ms-test)")
    what.add_argument(
        "--ms-test", action="store_true", help="the paper's whole per-image path: decode, 3 test scales, inference, merge + NMS"
    )
    what.add_argument(
        "--source", default="1920x1080", metavar="IMAGE|WxH", help="--ms-test input: an image file, or the size of a synthetic scene"
    )
    what.add_argument("--cuda-graphs", action="store_true", help="also time the folded PyTorch graph replayed as CUDA graphs")
    what.add_argument("--compile", action="store_true", help="also time the folded PyTorch graph under torch.compile")
    checks = p.add_argument_group("checks")
    checks.add_argument(
        "--budget-ms", type=positive_float, metavar="MS", help="per-image budget; 50 (the challenge's) with --ms-test, none otherwise"
    )
    checks.add_argument("--parity", action="store_true", help="judge each artifact against the PyTorch training graph, as acfd-export does")
    checks.add_argument(
        "--weights", type=Path, metavar="PATH", help="training checkpoint for --parity when it is not among --model / export.json"
    )
    checks.add_argument("--baseline", type=Path, metavar="JSON", help="an earlier --json from the same machine class to compare with")
    checks.add_argument(
        "--max-regression",
        type=non_negative_float,
        default=0.10,
        metavar="FRACTION",
        help="allowed slow-down against --baseline (0.10 = 10%%)",
    )
    timing = p.add_argument_group("timing")
    timing.add_argument(
        "--repeats", type=positive_int, default=3, metavar="N", help="independent timing runs per artifact and batch (median reported)"
    )
    timing.add_argument(
        "--interleave",
        action="store_true",
        help="time in rounds, one repeat of every artifact per round, so a machine that slows down slows all alike "
        "(sturdier ratios between artifacts; all are loaded at once, and memory peaks are not reported)",
    )
    timing.add_argument(
        "--min-time", type=non_negative_float, default=1.0, metavar="S", help="seconds of timed calls per repeat (at least 5 calls)"
    )
    timing.add_argument("--warmup", type=non_negative_int, default=3, metavar="N", help="untimed calls before each repeat")
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="PATH", help="write results and environment here")
    out.add_argument("--plot", type=Path, metavar="PNG", help="write a plot of latency per image against batch size")
    out.add_argument(
        "--machine-class", metavar="NAME", help="name of this machine class in the JSON; default: the GPU name, or the CPU model and cores"
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.bench.report import format_table, plot_latency, write_json
    from acfd_deploy.bench.run import BenchOptions, run_bench

    opts = options_from_args(BenchOptions, args, models=list(args.model), batches=args.batch, progress=not args.no_progress)
    document, failed = run_bench(opts)
    print(format_table(document["results"]))
    matmul = f"{document['reference_ms']:.2f} ms ({document['reference_gflops']:.0f} GFLOP/s)"
    print(f"machine: {document['machine_class']}; reference matmul {matmul}")
    for finding in document.get("baseline", {}).get("findings", []):
        print(f"baseline {'ok  ' if finding['ok'] else 'FAIL'} {finding['key']}: {finding['message']}")
    if args.json:
        write_json(document, args.json)
    if args.plot:
        plot_latency(document["results"], args.plot, document["budget_ms"])
    for line in failed:
        print(f"FAIL {line}")
    if failed:
        raise CheckFailed(f"{len(failed)} check(s): {'; '.join(failed)}" if len(failed) > 1 else failed[0])
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    raise SystemExit(main())
