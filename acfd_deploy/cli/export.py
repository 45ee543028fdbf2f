"""acfd-export: a training checkpoint -> verified ONNX (fp32 / fp16 / int8) and TensorRT artifacts.

    acfd-export --weights x.pth --fp16 --int8

Exit codes: 0 every artifact passed parity, 1 a parity check failed (the artifacts and
export.json are kept for inspection), 2 bad usage or bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from acfd_deploy.cli.common import EXIT_CHECK_FAILED, EXIT_OK, make_parser, positive_int, run
from acfd_deploy.export.accuracy import DEFAULT_VAL_IMAGES

PROG = "acfd-export"


def _gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in GiB, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size in GiB, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from acfd_deploy import list_configs
    from acfd_deploy.export.exporter import DEFAULT_IMGSZ, DEFAULT_WEIGHTS, ENGINES

    p = make_parser(
        PROG,
        "Export an ACFD checkpoint to verified inference artifacts: the folded PyTorch graph, ONNX fp32 "
        "(and fp16 / int8 on request), TensorRT plans where TensorRT and a GPU exist; then check every "
        "artifact against the PyTorch training graph and print a parity table. "
        "Exit 0: all passed; 1: a parity check failed; 2: bad input.",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help=f"training checkpoint (.pth/.pt/.safetensors; a folded deploy checkpoint works too). Default: {DEFAULT_WEIGHTS} if it exists",
    )
    p.add_argument("--config", default=None, help=f"model config, if the checkpoint does not store one ({', '.join(list_configs())})")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="no weights: build --config with random, calibrated weights (a demo of the toolchain, not a detector)",
    )
    p.add_argument("--fp16", action="store_true", help="also write an fp16 ONNX (fp32 inputs/outputs, box decoding kept fp32)")
    p.add_argument("--int8", action="store_true", help="also write an int8 Q/DQ ONNX, statically calibrated on --calib images")
    p.add_argument("--calib", type=Path, default=Path("calib"), help="folder of calibration images for --int8 (png/jpg/...)")
    p.add_argument(
        "--val-data",
        type=Path,
        default=None,
        help="labelled validation CSV (iCartoonFace format) on which --int8 must keep AP50 within 1 point "
        "of the PyTorch model; default: synthetic cartoon scenes at --imgsz",
    )
    p.add_argument("--val-images", type=Path, default=None, help="folder holding the --val-data images")
    p.add_argument("--val-count", type=int, default=DEFAULT_VAL_IMAGES, help="images of the validation set used for the int8 AP check")
    p.add_argument(
        "--imgsz",
        nargs=2,
        type=positive_int,
        metavar=("H", "W"),
        default=list(DEFAULT_IMGSZ),
        help="input size for calibration, parity images and the engine's optimal shape (ONNX stays dynamic)",
    )
    p.add_argument(
        "--batch", type=positive_int, default=1, help="largest batch of the TensorRT profile (its optimum), and the parity batch"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.add_argument(
        "--no-simplify",
        action="store_true",
        help="keep the exported ONNX as traced (by default it is simplified only if outputs stay equal)",
    )
    p.add_argument(
        "--engine",
        default="auto",
        help=f"one of {', '.join(ENGINES)}: auto builds TensorRT plans when TensorRT and a CUDA GPU exist; "
        "onnx never does; tensorrt requires them",
    )
    p.add_argument("--workspace", type=_gib, default=4.0, help="TensorRT builder workspace limit, GiB")
    p.add_argument("--out", type=Path, default=Path("exports"), help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the parity images and of --random-init")
    return p


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.export.exporter import ExportOptions, format_table, run_export, summary_lines

    opts = ExportOptions(
        weights=args.weights,
        config=args.config,
        random_init=args.random_init,
        fp16=args.fp16,
        int8=args.int8,
        calib=args.calib,
        imgsz=(args.imgsz[0], args.imgsz[1]),
        batch=args.batch,
        opset=args.opset,
        simplify=not args.no_simplify,
        engine=args.engine,
        workspace=args.workspace,
        out=args.out,
        seed=args.seed,
        val_data=args.val_data,
        val_images=args.val_images,
        val_count=args.val_count,
    )
    print(f"{PROG}: exporting to {opts.out}/", flush=True)
    result = run_export(opts)
    print()
    print(format_table(result))
    print()
    for line in summary_lines(result):
        print(line)
    if not result.passed:
        failed = ", ".join(r.name for r in result.artifacts if not r.parity.get("passed"))
        print(f"{PROG}: parity FAILED for {failed}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
