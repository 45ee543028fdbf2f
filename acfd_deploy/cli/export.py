"""acfd-export: a checkpoint -> verified ONNX (fp32 / fp16 / int8) and TensorRT artifacts.

    acfd-export --weights x.pth --fp16 --int8

Exit codes: 0 every artifact passed (or, without --strict, could not be judged and says
so), 1 a check failed (the previous verified export stays; the failed one is kept for
inspection), 2 bad usage or bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from acfd_deploy.cli.common import EXIT_OK, add_device, add_imgsz, any_int, make_parser, number, options_from_args, positive_int, run
from acfd_deploy.errors import AcfdError, CheckFailed
from acfd_deploy.verify.rules import Outcome

PROG = "acfd-export"
K8S_BESIDE = Path("<beside the repository>")  # --k8s without a folder


_gib = number(float, "a positive size in GiB", above=0)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    from acfd_deploy import list_configs
    from acfd_deploy.export.options import DEFAULT_IMGSZ, DEFAULT_OUT, ENGINES
    from acfd_deploy.verify.accuracy import DEFAULT_VAL_IMAGES

    p = make_parser(
        prog,
        "Export an ACFD checkpoint to verified inference artifacts: the folded PyTorch graph, ONNX fp32 "
        "(and fp16 / int8 on request), TensorRT plans where TensorRT and a GPU exist; check every artifact "
        "against the PyTorch training graph and print the table.\n\n"
        "The export is built beside --out and swapped in only when complete: an interrupted or failed run "
        "leaves the previous export as it was.\n"
        "Exit 0: every artifact passed; 1: a check failed; 2: bad input; 3: a bug.",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--model",
        "--weights",
        dest="weights",
        type=Path,
        metavar="PATH",
        help="checkpoint to export (.pth/.pt/.safetensors; a folded deploy checkpoint works too); default: the bundled demo model",
    )
    model.add_argument("--config", metavar="NAME", help=f"model config, where the checkpoint stores none: {', '.join(list_configs())}")
    model.add_argument(
        "--random-init", action="store_true", help="no weights: build --config with random, calibrated weights (a demo of the toolchain)"
    )
    what = p.add_argument_group("artifacts")
    what.add_argument("--fp16", action="store_true", help="also an fp16 ONNX (fp32 inputs and outputs, box decoding kept in fp32)")
    what.add_argument("--int8", action="store_true", help="also an int8 Q/DQ ONNX, statically calibrated on the --calib images")
    what.add_argument(
        "--openvino",
        action="store_true",
        help="also OpenVINO IR (.xml + .bin) of the fp32 ONNX, run in f32 and bf16, and an int8 IR with --int8",
    )
    what.add_argument(
        "--end2end",
        action="store_true",
        help="also end-to-end graphs (NAME.e2e*.onnx, and IR with --openvino): uint8 [B,H,W,3] images in, "
        "num_dets/det_boxes/det_scores out, resize, test scales, decode and NMS inside",
    )
    what.add_argument(
        "--ms-test", action="store_true", help="--end2end: the paper's multi-scale test (480x645, 640x860, 800x1075) in one graph"
    )
    add_imgsz(what, (640, 860), "--end2end: the graph's single test scale (acfd-detect's default)", "--e2e-imgsz")
    what.add_argument(
        "--keep-ratio",
        action="store_true",
        help="--end2end: keep each image's aspect ratio (fit inside the scale, pad with the pixel mean)",
    )
    what.add_argument(
        "--pt2",
        action="store_true",
        help="also an AOTInductor package (.pt2: torch.export, compiled C++ / CUDA) for --device, fp16 too with --fp16 on CUDA; needs g++",
    )
    what.add_argument("--calib", type=Path, metavar="DIR", help="calibration images for --int8; default: the bundled synthetic scenes")
    what.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="TensorRT plans: auto builds them where TensorRT and a CUDA GPU exist, onnx never, tensorrt requires them",
    )
    what.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="output folder, replaced as a whole when the export is complete"
    )
    shape = p.add_argument_group("shapes")
    add_imgsz(shape, DEFAULT_IMGSZ, "input size of calibration, parity images and the engine's optimal shape (the ONNX stays dynamic)")
    shape.add_argument(
        "--batch",
        type=positive_int,
        default=1,
        metavar="N",
        help="images per call: the largest batch (and optimum) of the TensorRT profile, and the parity batch",
    )
    shape.add_argument("--opset", type=any_int, default=17, metavar="N", help="ONNX opset (13..23)")
    shape.add_argument(
        "--no-simplify", action="store_true", help="keep the ONNX as traced (by default it is simplified only if outputs stay equal)"
    )
    check = p.add_argument_group("verification")
    check.add_argument(
        "--val-data",
        type=Path,
        metavar="CSV",
        help="labelled validation CSV (iCartoonFace format) on which --int8 must keep AP50 within 1 point of the PyTorch model; "
        "default: synthetic cartoon scenes at --imgsz",
    )
    check.add_argument("--val-images", type=Path, metavar="DIR", help="folder holding the --val-data images")
    check.add_argument(
        "--val-count", type=positive_int, default=DEFAULT_VAL_IMAGES, metavar="N", help="validation images used for the int8 AP check"
    )
    check.add_argument("--strict", action="store_true", help="fail (exit 1) when any artifact could not be verified (n/a)")
    check.add_argument(
        "--seed", type=any_int, default=0, metavar="N", help="seed of the parity images, the synthetic validation set and --random-init"
    )
    triton = p.add_argument_group("Triton")
    triton.add_argument(
        "--triton-repo",
        type=Path,
        metavar="DIR",
        help="also write a model repository for the stock Triton server (tritonserver --model-repository DIR) with the verified artifact",
    )
    triton.add_argument(
        "--triton-precision",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="which verified artifact goes into --triton-repo (a TensorRT plan where one passed, else the ONNX file)",
    )
    triton.add_argument(
        "--k8s",
        nargs="?",
        const=K8S_BESIDE,
        type=Path,
        metavar="DIR",
        help="also Kubernetes manifests for --triton-repo (Deployment, Service, PodDisruptionBudget, HPA, PVC, KServe "
        "InferenceService, README) in DIR; default: DIR beside the repository, named <triton-repo>-k8s",
    )
    triton.add_argument("--k8s-image", metavar="IMAGE", help="the tritonserver image the manifests name (never pulled here)")
    triton.add_argument(
        "--k8s-gpus",
        type=number(int, "a whole number", 0),
        metavar="N",
        help="nvidia.com/gpu per pod (default: 1 for a TensorRT plan, else 0)",
    )
    gpu = p.add_argument_group("TensorRT")
    add_device(gpu, help="the GPU that builds and runs TensorRT engines; cpu skips them")
    gpu.add_argument("--workspace", type=_gib, default=4.0, metavar="GIB", help="TensorRT builder workspace limit in GiB")
    return p


def _k8s_dir(args: argparse.Namespace) -> Path | None:
    if args.k8s is None or args.k8s != K8S_BESIDE:
        return args.k8s
    if args.triton_repo is None:
        raise AcfdError("--k8s writes manifests for the Triton model repository: add --triton-repo DIR")
    repo = Path(args.triton_repo)
    return repo.with_name(f"{repo.name}-k8s")


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.export.exporter import run_export
    from acfd_deploy.export.options import ExportOptions
    from acfd_deploy.export.report import format_table, summary_lines

    opts = options_from_args(ExportOptions, args, simplify=not args.no_simplify, k8s_dir=_k8s_dir(args))
    print(f"{PROG}: exporting to {opts.out}/", flush=True)
    result = run_export(opts)
    manifest = result.manifest
    print()
    print(format_table(manifest["artifacts"], manifest["notes"].get("reference_ap")))
    print()
    for line in summary_lines(manifest):
        print(line)
    print(f"Artifacts and figures: {result.out / 'export.json'}")
    if result.triton_repo is not None:
        print(f"Triton model repository: {result.triton_repo} (how to run it: {result.triton_repo / 'README.md'})")
    if result.k8s_dir is not None:
        print(f"Kubernetes manifests: {result.k8s_dir} (kubectl apply -k {result.k8s_dir}; see {result.k8s_dir / 'README.md'})")
    unverified = result.status == Outcome.UNVERIFIED.value
    if result.status == Outcome.FAILED.value or (unverified and opts.strict):
        bad = [a["name"] for a in manifest["artifacts"] if a["passed"] is not True and (a["passed"] is False or opts.strict)]
        what = "not verified (--strict): " if unverified else ""
        kept = f"; the previous verified export in {opts.out} is unchanged" if result.kept_previous else ""
        raise CheckFailed(f"{what}{', '.join(bad)} (kept in {result.out} for inspection{kept})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())
