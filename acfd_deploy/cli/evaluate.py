"""acfd-eval: the iCartoon Face Challenge metric (AP50) on a prediction CSV or a model.

The printed ``AP50:`` is the official scorer's number (:mod:`acfd_deploy.eval.metric`):
prediction rows are scored as the official scorer reads them, reversed corners, ``nan``
and ``inf`` included, each image's rows matched in file order. Such rows and unsorted
images are warned about, and where they change the AP, the AP of the file sorted and
cleaned is printed too. Ground truth is cleaned (rows with reversed corners or
non-finite values dropped, boxes clipped to the image), with a warning saying so.

Exit 0 with the AP; exit 2 for input the metric cannot use (missing, empty or
malformed files, a prediction CSV without scores). Rows that cannot be parsed are
skipped with a warning that counts them and names their first line numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from acfd_deploy.cli.common import EXIT_OK, add_pipeline_args, detector_from_args, make_parser, run
from acfd_deploy.errors import AcfdError

if TYPE_CHECKING:
    from acfd_deploy.data.icartoon import Annotations
    from acfd_deploy.eval.audit import DetectionAudit

PROG = "acfd-eval"


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _is_blank(path: Path) -> bool:
    try:
        return path.is_file() and not path.read_bytes().strip()
    except OSError:
        return False


def _lines(lines: Sequence[int], n: int = 3) -> str:
    return ("line " if len(lines) == 1 else "lines ") + ", ".join(map(str, lines[:n])) + (", ..." if len(lines) > n else "")


# ground-truth rows that the official scorer reads as faces but acfd-eval drops
_GT_KEPT_BY_OFFICIAL = ("box with x2 < x1", "box with y2 < y1", "non-finite coordinate (nan or inf)", "empty image name")


def _read_gt(path: str):
    from acfd_deploy.data.icartoon import read_annotations

    gt = read_annotations(path, kind="auto")
    if gt.kind == "det":
        _warn(f"{path} has a score column (7 columns); using its boxes as ground truth. Were --gt and --pred swapped?")
    if gt.issues:
        kept = sum(i.reason in _GT_KEPT_BY_OFFICIAL for i in gt.issues)
        note = (
            f"; the official scorer would keep the {kept} row(s) with reversed corners, nan/inf or no name as faces "
            "(counted in recall), so its AP can differ"
            if kept
            else ""
        )
        _warn(gt.issue_summary() + note)
    return gt


def _read_pred(path: str, allow_empty: bool) -> Annotations:
    from acfd_deploy.data.icartoon import Annotations, read_annotations

    if _is_blank(Path(path)):
        if not allow_empty:
            raise AcfdError(f"{path} is empty: no detections to score (pass --allow-empty-pred to score it as AP 0)")
        _warn(f"{path} is empty: no detections, AP is 0")
        return Annotations(kind="det", scores={}, source=path)
    pred = read_annotations(path, kind="det", keep_suspect=True)
    if pred.issues:
        _warn(
            pred.issue_summary() + "; the official scorer cannot parse such rows (it would stop on this file), "
            "so there is no official AP of this file: AP50 here scores the other rows"
        )
    return pred


def _as_csv(boxes: dict[str, np.ndarray], scores: dict[str, np.ndarray], save_to: str | None) -> Annotations:
    """The model's detections as the CSV ``--save-pred`` writes and read back, so that
    they score exactly as that CSV does (coordinates to 0.01 pixel, scores to 1e-6)."""
    import tempfile

    from acfd_deploy.data.icartoon import Annotations, read_annotations, write_annotations

    if not any(len(b) for b in boxes.values()):
        if save_to:
            write_annotations(save_to, boxes, scores, kind="det", decimals=2)
        return Annotations(kind="det", scores={}, source=save_to or "detections")
    with tempfile.TemporaryDirectory(prefix="acfd-eval-") as tmp:
        path = save_to or str(Path(tmp) / "detections.csv")
        write_annotations(path, boxes, scores, kind="det", decimals=2)
        return read_annotations(path, kind="det", keep_suspect=True)


def _warn_about_detections(source: str, audit: DetectionAudit) -> None:
    if audit.reversed_lines:
        _warn(
            f"{source}: {len(audit.reversed_lines)} row(s) with reversed corners (x2 < x1 or y2 < y1) ({_lines(audit.reversed_lines)}): "
            "kept as detections, as the official scorer keeps them (normally false positives)"
        )
    if audit.non_finite_lines:
        _warn(
            f"{source}: {len(audit.non_finite_lines)} row(s) with a nan or inf value ({_lines(audit.non_finite_lines)}): "
            "kept as detections, as the official scorer keeps them"
        )
    if audit.unsorted_images:
        _warn(
            f"{source}: {len(audit.unsorted_images)} of {audit.num_images} image(s) have rows not in descending score order "
            f"(first out-of-order row: {_lines(audit.unsorted_lines)}): the official scorer matches each image's detections "
            "in file order, not by score"
        )


def _differing(a: float, b: float) -> str:
    """``b`` with 4 decimals, or as many more as it takes to tell it from ``a``."""
    for digits in range(4, 18):
        if f"{a:.{digits}f}" != f"{b:.{digits}f}":
            return f"{b:.{digits}f}"
    return repr(b)


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
    from acfd_deploy.data.icartoon import Annotations, check_inside
    from acfd_deploy.eval.audit import audit_detections, sorted_and_cleaned
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
        model_boxes, model_scores, sizes, failed = _run_model(args, list(gt_boxes), images_dir)  # type: ignore[arg-type]
        if failed:
            _warn(f"{len(failed)} image(s) could not be read ({_examples(failed)}); their faces count as missed")
        pred = _as_csv(model_boxes, model_scores, args.save_pred)
    else:
        pred = _read_pred(args.pred, args.allow_empty_pred)
        sizes = {}
        if images_dir is not None:
            sizes, _, unreadable = _image_sizes(images_dir, list(gt_boxes))
            if unreadable:
                _warn(f"{len(unreadable)} image(s) in {images_dir} could not be read for their size ({_examples(unreadable)})")
    pred_boxes, pred_scores = pred.boxes, pred.scores or {}

    n_out, n_img = check_inside(Annotations(kind="val", boxes=gt_boxes), sizes, clip=True)
    if n_out:
        _warn(
            f"{n_out} ground-truth box(es) on {n_img} image(s) reach outside their image; clipped to it "
            "(the official scorer does not clip, so its AP can differ)"
        )
    n_out, n_img = check_inside(Annotations(kind="det", boxes=pred_boxes), sizes, clip=False)
    if n_out:
        _warn(f"{n_out} predicted box(es) on {n_img} image(s) reach outside their image; scored unclipped, as the official scorer does")
    audit = audit_detections(pred_boxes, pred_scores, pred.lines)
    _warn_about_detections(args.pred or args.save_pred or "the model's detections", audit)
    unknown = [n for n in pred_boxes if n not in gt_boxes]
    if unknown:
        n_boxes = sum(len(pred_boxes[n]) for n in unknown)
        _warn(f"{n_boxes} detection(s) on {len(unknown)} image(s) without ground truth ignored ({_examples(unknown)})")

    result = evaluate(gt_boxes, pred_boxes, pred_scores, iou_threshold=args.iou)
    tidy = result if audit.clean else evaluate(gt_boxes, *sorted_and_cleaned(pred_boxes, pred_scores), iou_threshold=args.iou)
    f1, thr = result.best_f1()
    print(
        f"ground truth: {result.num_gt_images} images, {result.num_gt_boxes} boxes; "
        f"predictions: {result.num_pred_images} images, {result.num_pred_boxes} boxes ({result.num_ignored} ignored)"
    )
    print(f"AP50: {result.ap:.4f}")
    if tidy.ap != result.ap:
        print(
            f"AP50 if sorted and cleaned: {_differing(result.ap, tidy.ap)} "
            "(not the official number: reversed and nan/inf rows dropped, each image's rows sorted by score)"
        )
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
            "AP50_sorted_cleaned": tidy.ap,
            "pred_rows_skipped": len(pred.issues),
            "pred_rows_reversed": len(audit.reversed_lines),
            "pred_rows_non_finite": len(audit.non_finite_lines),
            "pred_images_unsorted": len(audit.unsorted_images),
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
