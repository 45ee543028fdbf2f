"""acfd-eval: the iCartoon Face Challenge metric (AP50) on a prediction CSV or a model.

Exit 0 with the AP; exit 2 for input the metric cannot use (missing, empty or
malformed files, a prediction CSV without scores). Rows that are merely bad are skipped
with a warning that counts them and names their first line numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acfd_deploy.cli.common import EXIT_OK, add_pipeline_args, detector_from_args, make_parser, run
from acfd_deploy.errors import AcfdError

PROG = "acfd-eval"


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _is_blank(path: Path) -> bool:
    try:
        return path.is_file() and not path.read_bytes().strip()
    except OSError:
        return False


def _read_gt(path: str):
    from acfd_deploy.data.icartoon import read_annotations

    gt = read_annotations(path, kind="auto")
    if gt.kind == "det":
        _warn(f"{path} has a score column (7 columns); using its boxes as ground truth. Were --gt and --pred swapped?")
    if gt.issues:
        _warn(gt.issue_summary())
    return gt


def _read_pred(path: str, allow_empty: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    from acfd_deploy.data.icartoon import read_annotations

    if _is_blank(Path(path)):
        if not allow_empty:
            raise AcfdError(f"{path} is empty: no detections to score (pass --allow-empty-pred to score it as AP 0)")
        _warn(f"{path} is empty: no detections, AP is 0")
        return {}, {}
    pred = read_annotations(path, kind="det")
    if pred.issues:
        _warn(pred.issue_summary())
    return pred.boxes, pred.scores or {}


def _image_sizes(directory: Path, names: Sequence[str]) -> tuple[dict[str, tuple[int, int]], list[str], list[str]]:
    """Sizes of the named images found in ``directory``; (sizes, missing names, unreadable)."""
    from acfd_deploy.pipeline.io import ImageLoadError, image_size

    sizes, missing, unreadable = {}, [], []
    for name in names:
        p = directory / name
        if not p.is_file():
            missing.append(name)
            continue
        try:
            sizes[name] = image_size(p)
        except ImageLoadError:
            unreadable.append(name)
    return sizes, missing, unreadable


def _examples(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def _run_model(
    args: argparse.Namespace, gt_names: list[str], images_dir: Path
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, tuple[int, int]], list[str]]:
    from tqdm import tqdm

    from acfd_deploy.pipeline import ImageLoadError

    paths = [images_dir / n for n in gt_names if (images_dir / n).is_file()]
    detector = detector_from_args(args, PROG)
    boxes, scores, sizes, failed = {}, {}, {}, []
    bar = tqdm(total=len(paths), desc="eval", unit="img", disable=True if args.no_progress else None, file=sys.stderr)
    for path, result in detector.detect_paths(paths):
        bar.update(1)
        if isinstance(result, ImageLoadError):
            failed.append(path.name)
            tqdm.write(f"{PROG}: warning: {result}", file=sys.stderr)
            continue
        boxes[path.name], scores[path.name] = result.boxes.astype(np.float64), result.scores.astype(np.float64)
        sizes[path.name] = (result.height, result.width)
    bar.close()
    return boxes, scores, sizes, failed


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.data.icartoon import Annotations, check_inside, write_annotations
    from acfd_deploy.eval.metric import evaluate
    from acfd_deploy.fileio import atomic_path

    if bool(args.pred) == bool(args.model):
        raise AcfdError("give exactly one of --pred PRED.csv or --model PATH (with --images DIR)")
    if args.model and not args.images:
        raise AcfdError("--model needs --images DIR (the images the ground truth names)")
    if not 0.0 < args.iou <= 1.0:
        raise AcfdError(f"--iou must be in (0, 1], got {args.iou}")
    gt = _read_gt(args.gt)
    images_dir = Path(args.images) if args.images else None
    if images_dir is not None and not images_dir.is_dir():
        raise AcfdError(f"--images: not a directory: {images_dir}")

    gt_boxes = gt.boxes
    if images_dir is not None:
        names = list(gt.boxes)
        present = [n for n in names if (images_dir / n).is_file()]
        missing = [n for n in names if n not in set(present)]
        if not present:
            raise AcfdError(f"none of the {len(names)} images named in {args.gt} is in {images_dir} (first: {names[0]})")
        if missing:
            _warn(
                f"{len(missing)} of {len(names)} ground-truth images are not in {images_dir} ({_examples(missing)}); "
                f"scoring the other {len(present)}"
            )
            gt_boxes = {n: gt.boxes[n] for n in present}

    if args.model:
        pred_boxes, pred_scores, sizes, failed = _run_model(args, list(gt_boxes), images_dir)  # type: ignore[arg-type]
        if failed:
            _warn(f"{len(failed)} image(s) could not be read ({_examples(failed)}); their faces count as missed")
        if args.save_pred:
            write_annotations(args.save_pred, pred_boxes, pred_scores, kind="det", decimals=2)
    else:
        pred_boxes, pred_scores = _read_pred(args.pred, args.allow_empty_pred)
        sizes = {}
        if images_dir is not None:
            sizes, _, unreadable = _image_sizes(images_dir, list(gt_boxes))
            if unreadable:
                _warn(f"{len(unreadable)} image(s) in {images_dir} could not be read for their size ({_examples(unreadable)})")

    for label, boxes in (("ground-truth", gt_boxes), ("predicted", pred_boxes)):
        n_out, n_img = check_inside(Annotations(kind="val", boxes=boxes), sizes, clip=True)
        if n_out:
            _warn(f"{n_out} {label} box(es) on {n_img} image(s) reach outside their image; clipped to it")
    unknown = [n for n in pred_boxes if n not in gt_boxes]
    if unknown:
        n_boxes = sum(len(pred_boxes[n]) for n in unknown)
        _warn(f"{n_boxes} detection(s) on {len(unknown)} image(s) without ground truth ignored ({_examples(unknown)})")

    result = evaluate(gt_boxes, pred_boxes, pred_scores, iou_threshold=args.iou)
    f1, thr = result.best_f1()
    print(
        f"ground truth: {result.num_gt_images} images, {result.num_gt_boxes} boxes; "
        f"predictions: {result.num_pred_images} images, {result.num_pred_boxes} boxes ({result.num_ignored} ignored)"
    )
    print(f"AP50: {result.ap:.4f}")
    print(
        f"precision: {result.precision:.4f}  recall: {result.recall:.4f}  best F1: {f1:.4f}"
        + (f" at score {thr:.3f}" if result.num_tp else "")
    )
    if args.json:
        payload = {
            **result.to_dict(),
            "gt": str(args.gt),
            "pred": str(args.pred) if args.pred else None,
            "model": str(args.model) if args.model else None,
            "gt_rows_skipped": len(gt.issues),
        }
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        from acfd_deploy.eval.plot import plot_pr

        plot_pr(result, args.plot)
    return EXIT_OK


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Score detections with the iCartoon Face Challenge metric (all-points VOC AP at IoU 0.5, +1 pixel areas).")
    parser.add_argument("--gt", required=True, help="ground truth CSV (image,x1,y1,x2,y2[,face])")
    parser.add_argument("--pred", help="detections CSV (image,x1,y1,x2,y2,face,score)")
    parser.add_argument("--images", help="image directory: needed with --model; with --pred, boxes are checked against the image sizes")
    add_pipeline_args(parser, default_demo=False)
    parser.add_argument("--save-pred", help="with --model: also write the detections CSV here")
    parser.add_argument("--json", help="write the metrics as JSON here")
    parser.add_argument("--plot", help="write the precision-recall curve as a PNG here")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU threshold of a match (the challenge: 0.5)")
    parser.add_argument("--allow-empty-pred", action="store_true", help="score an empty prediction CSV as AP 0 instead of refusing it")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())
