"""acfd-detect: images in, faces out (annotated images, a challenge CSV and a JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.cli.common import EXIT_OK, make_parser, positive_int, run
from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.detector import DEFAULT_SCALE, MS_TEST_SCALES, Detector, DetectorConfig

PROG = "acfd-detect"


def add_pipeline_args(parser: argparse.ArgumentParser, model_required: bool, model_default_note: str = "") -> None:
    """Options shared with acfd-eval --model: the model and how images reach it."""
    parser.add_argument(
        "--model",
        required=model_required,
        help="weights: .pth/.pt/.safetensors (PyTorch), .onnx (ONNX Runtime) or .plan (TensorRT)" + model_default_note,
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--ms-test", action="store_true", help="the paper's multi-scale test: 480x645, 640x860 and 800x1075, merged")
    scale.add_argument(
        "--imgsz",
        nargs=2,
        type=positive_int,
        default=list(DEFAULT_SCALE),
        metavar=("H", "W"),
        help="single test scale (the paper's middle one)",
    )
    parser.add_argument(
        "--keep-ratio",
        action="store_true",
        help="keep each image's aspect ratio (fit inside HxW, pad with the pixel mean) instead of resizing to exactly HxW",
    )
    parser.add_argument("--batch", type=positive_int, default=4, help="images per runner call")
    parser.add_argument("--device", default="cpu", help="PyTorch device for .pth models (cpu, cuda, cuda:1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_detector(args: argparse.Namespace) -> Detector:
    from acfd_deploy.runtime.loader import load_runner

    scales = MS_TEST_SCALES if args.ms_test else (tuple(args.imgsz),)
    runner = load_runner(args.model, device=args.device)
    return Detector(runner, DetectorConfig(scales=scales, keep_ratio=args.keep_ratio, batch_size=args.batch))


def check_unique_names(paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        if p.name in seen:
            raise AcfdError(
                f"two inputs share the file name {p.name!r} ({seen[p.name]} and {p}); the challenge CSV keys images by file name"
            )
        seen[p.name] = p


_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}


def _annotated_target(directory: Path, path: Path) -> tuple[Path, str]:
    """Same name and format as the input where PIL writes it; PNG otherwise (e.g. TIFF)."""
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    return (directory / path.name, fmt) if fmt else (directory / (path.stem + ".png"), "PNG")


def _body(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from acfd_deploy.data.icartoon import write_annotations
    from acfd_deploy.fileio import atomic_path
    from acfd_deploy.pipeline import ImageLoadError, draw_detections, find_images, load_image

    if not 0.0 <= args.conf <= 1.0:
        raise AcfdError(f"--conf must be in [0, 1], got {args.conf}")
    paths = find_images(args.inputs)
    if not paths:
        raise AcfdError("no images found in " + ", ".join(args.inputs))
    check_unique_names(paths)
    if args.model is None:
        from acfd_deploy.checkpoint import DEMO_WEIGHTS, demo_weights

        demo = demo_weights()
        if demo is None:
            raise AcfdError(f"--model is needed (no bundled {DEMO_WEIGHTS} here)")
        args.model = str(demo)
        print(f"{PROG}: no --model given: using the bundled demo model {demo} (trained on synthetic faces only)", file=sys.stderr)
    detector = build_detector(args)
    out = Path(args.out)
    annotated_dir = out / "annotated"
    boxes: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    records: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    bar = tqdm(total=len(paths), desc="detect", unit="img", disable=True if args.no_progress else None, file=sys.stderr)
    for path, result in detector.detect_paths(paths):
        bar.update(1)
        if isinstance(result, ImageLoadError):
            errors.append({"path": str(path), "error": str(result)})
            tqdm.write(f"{PROG}: warning: skipped {result}", file=sys.stderr)
            continue
        boxes[path.name], scores[path.name] = result.boxes, result.scores
        records.append(
            {
                "image": path.name,
                "path": str(path),
                "height": result.height,
                "width": result.width,
                "detections": [
                    {"box": [round(float(v), 2) for v in b], "score": round(float(s), 6)} for b, s in zip(result.boxes, result.scores)
                ],
            }
        )
        if not args.no_draw:
            picture = draw_detections(load_image(path), result.boxes, result.scores, args.conf)
            target, fmt = _annotated_target(annotated_dir, path)
            with atomic_path(target) as tmp:
                picture.save(tmp, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    bar.close()
    if not records:
        raise AcfdError(f"none of the {len(paths)} input files could be read as an image (first: {errors[0]['error']})")
    csv_path = write_annotations(out / "detections.csv", boxes, scores, kind="det", decimals=2)
    runner = detector.runner
    meta = {
        "model": str(args.model),
        "runner": getattr(runner, "name", type(runner).__name__),
        "precision": getattr(runner, "precision", "unknown"),
        "scales": [list(s) for s in detector.config.scales],
        "keep_ratio": detector.config.keep_ratio,
        "score_threshold": detector.config.post.score_threshold,
        "pre_nms_topk": detector.config.post.pre_nms_topk,
        "nms_iou": detector.config.post.nms_iou,
        "max_det": detector.config.post.max_det,
        "draw_conf": args.conf,
        "images": records,
        "errors": errors,
    }
    with atomic_path(out / "detections.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    n_det = sum(len(r["detections"]) for r in records)
    n_conf = sum(1 for r in records for d in r["detections"] if d["score"] >= args.conf)
    print(f"{len(records)} image(s), {n_det} detection(s) ({n_conf} with score >= {args.conf:g}) -> {csv_path}, {out / 'detections.json'}")
    if not args.no_draw:
        print(f"annotated images -> {annotated_dir}")
    if errors:
        print(f"{PROG}: warning: {len(errors)} of {len(paths)} file(s) could not be read (listed in detections.json)", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(PROG, "Detect cartoon faces: writes annotated images, detections.csv (challenge format) and detections.json.")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or directories of images")
    add_pipeline_args(parser, model_required=False, model_default_note="; default: the bundled demo model, models/acfd-tiny-demo.pth")
    parser.add_argument(
        "--conf", type=float, default=0.5, help="score needed for a box to be drawn (the CSV and JSON keep every detection)"
    )
    parser.add_argument("--out", default="runs/detect", help="output directory")
    parser.add_argument("--no-draw", action="store_true", help="skip the annotated images")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
