"""One scoring run of the iCartoon Face Challenge metric: ground truth and detections in,
the official AP and everything worth a warning out.

The printed AP is the official scorer's number (:mod:`acfd_deploy.eval.metric`):
prediction rows are scored as the official scorer reads them, reversed corners, ``nan``
and ``inf`` included, each image's rows matched in file order. Such rows and unsorted
images are warned about, and where they change the AP, the AP of the file sorted and
cleaned (:mod:`acfd_deploy.eval.audit`) is reported too. Ground truth is cleaned (rows
with reversed corners or non-finite values dropped, boxes clipped to the image), with a
warning saying so.

This lives below the command line so that the same run, with the same warnings and the
same JSON, is one call for a script or a notebook as it is for ``acfd-eval``. Warnings
go to a callback as they arise (and are kept on the report), never to a stream: how
they are shown is the caller's business. Input the metric cannot use raises
:class:`~acfd_deploy.errors.AcfdError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from acfd_deploy.errors import AcfdError
from acfd_deploy.eval.audit import DetectionAudit, audit_detections, sorted_and_cleaned
from acfd_deploy.eval.metric import IOU_THRESHOLD, EvalResult, evaluate

if TYPE_CHECKING:
    from acfd_deploy.data.icartoon import Annotations
    from acfd_deploy.pipeline.detector import Detector

Warn = Callable[[str], None]
# a ready Detector, or how to build one: building loads the model, so it waits until the
# ground truth has been read and checked (a bad --gt is reported before a slow load)
DetectorSource = Union["Detector", Callable[[], "Detector"]]

# ground-truth rows that the official scorer reads as faces but this run drops
_GT_KEPT_BY_OFFICIAL = ("box with x2 < x1", "box with y2 < y1", "non-finite coordinate (nan or inf)", "empty image name")


@dataclass(frozen=True)
class EvalOptions:
    """What to score and how. Paths are kept as given: warnings and the JSON quote them."""

    gt: str | os.PathLike[str]
    pred: str | os.PathLike[str] | None = None  # a detections CSV; or None, and a detector is passed to run_eval
    images: str | os.PathLike[str] | None = None  # the images the ground truth names: needed with a detector
    model: str | None = None  # what the detector was built from; recorded in the JSON only
    save_pred: str | os.PathLike[str] | None = None  # with a detector: also write its detections CSV here
    iou: float = IOU_THRESHOLD
    allow_empty_pred: bool = False  # an empty CSV scores AP 0 instead of being refused
    progress: bool = True  # a progress bar on stderr while the detector runs (off where stderr is no terminal)


@dataclass
class EvalReport:
    """The official result, the sorted-and-cleaned one beside it, and what was wrong with the input."""

    result: EvalResult
    cleaned: EvalResult  # the detections sorted and cleaned; ``result`` itself where there was nothing to clean
    audit: DetectionAudit
    gt: str
    pred: str | None
    model: str | None
    gt_rows_skipped: int
    pred_rows_skipped: int
    warnings: list[str] = field(default_factory=list)

    @property
    def cleaned_ap(self) -> float | None:
        """The sorted-and-cleaned AP where it differs from the official one, else None."""
        return None if self.cleaned.ap == self.result.ap else self.cleaned.ap

    def summary_lines(self) -> list[str]:
        """The text ``acfd-eval`` prints: counts, the official AP, the cleaned AP where it
        differs (with the digits it takes to tell them apart), precision, recall, best F1."""
        r = self.result
        f1, thr = r.best_f1()
        lines = [
            f"ground truth: {r.num_gt_images} images, {r.num_gt_boxes} boxes; "
            f"predictions: {r.num_pred_images} images, {r.num_pred_boxes} boxes ({r.num_ignored} ignored)",
            f"AP50: {r.ap:.4f}",
        ]
        if self.cleaned_ap is not None:
            lines.append(
                f"AP50 if sorted and cleaned: {tell_apart(r.ap, self.cleaned_ap)} "
                "(not the official number: reversed and nan/inf rows dropped, each image's rows sorted by score)"
            )
        lines.append(
            f"precision: {r.precision:.4f}  recall: {r.recall:.4f}  best F1: {f1:.4f}" + (f" at score {thr:.3f}" if r.num_tp else "")
        )
        return lines

    def to_json(self) -> dict[str, Any]:
        """The metrics and input counts as ``acfd-eval --json`` writes them (keys in this order)."""
        return {
            **self.result.to_dict(),
            "gt": self.gt,
            "pred": self.pred,
            "model": self.model,
            "gt_rows_skipped": self.gt_rows_skipped,
            "AP50_sorted_cleaned": self.cleaned.ap,
            "pred_rows_skipped": self.pred_rows_skipped,
            "pred_rows_reversed": len(self.audit.reversed_lines),
            "pred_rows_non_finite": len(self.audit.non_finite_lines),
            "pred_images_unsorted": len(self.audit.unsorted_images),
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """:meth:`to_json` to ``path``, replaced whole or not at all."""
        from acfd_deploy.fileio import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def run_eval(opts: EvalOptions, detector: DetectorSource | None = None, warn: Warn | None = None) -> EvalReport:
    """Score ``opts.pred`` (a CSV) or the detections of ``detector`` on ``opts.images``
    against ``opts.gt``; each warning goes to ``warn`` as it arises and onto the report.

    Give exactly one of ``opts.pred`` and ``detector``. A callable ``detector`` is called
    once, after the ground truth has been read and the images found.
    """
    from acfd_deploy.data.icartoon import Annotations, check_inside

    if (opts.pred is None) == (detector is None):
        raise AcfdError("give exactly one of a prediction CSV or a detector")
    if detector is not None and opts.images is None:
        raise AcfdError("a detector needs the directory of the images the ground truth names")
    if not 0.0 < opts.iou <= 1.0:
        raise AcfdError(f"--iou must be in (0, 1], got {opts.iou}")
    warnings: list[str] = []

    def say(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    gt = _read_gt(os.fspath(opts.gt), say)
    images_dir = Path(opts.images) if opts.images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise AcfdError(f"--images: not a directory: {images_dir}")
    gt_boxes = gt.boxes if images_dir is None else _present_images(gt, os.fspath(opts.gt), images_dir, say)

    save_pred = os.fspath(opts.save_pred) if opts.save_pred is not None else None
    if detector is not None:
        assert images_dir is not None
        boxes, scores, sizes, failed = _run_detector(detector, list(gt_boxes), images_dir, opts.progress, say)
        if failed:
            say(f"{len(failed)} image(s) could not be read ({_examples(failed)}); their faces count as missed")
        pred = _as_csv(boxes, scores, save_pred)
    else:
        pred = _read_pred(os.fspath(opts.pred), opts.allow_empty_pred, say)  # type: ignore[arg-type]
        sizes = {}
        if images_dir is not None:
            sizes, unreadable = _image_sizes(images_dir, list(gt_boxes))
            if unreadable:
                say(f"{len(unreadable)} image(s) in {images_dir} could not be read for their size ({_examples(unreadable)})")
    pred_boxes, pred_scores = pred.boxes, pred.scores or {}

    n_out, n_img = check_inside(Annotations(kind="val", boxes=gt_boxes), sizes, clip=True)
    if n_out:
        say(
            f"{n_out} ground-truth box(es) on {n_img} image(s) reach outside their image; clipped to it "
            "(the official scorer does not clip, so its AP can differ)"
        )
    n_out, n_img = check_inside(Annotations(kind="det", boxes=pred_boxes), sizes, clip=False)
    if n_out:
        say(f"{n_out} predicted box(es) on {n_img} image(s) reach outside their image; scored unclipped, as the official scorer does")
    audit = audit_detections(pred_boxes, pred_scores, pred.lines)
    pred_name = os.fspath(opts.pred) if opts.pred is not None else None
    _warn_about_detections(pred_name or save_pred or "the model's detections", audit, say)
    unknown = [n for n in pred_boxes if n not in gt_boxes]
    if unknown:
        n_boxes = sum(len(pred_boxes[n]) for n in unknown)
        say(f"{n_boxes} detection(s) on {len(unknown)} image(s) without ground truth ignored ({_examples(unknown)})")

    result = evaluate(gt_boxes, pred_boxes, pred_scores, iou_threshold=opts.iou)
    cleaned = result if audit.clean else evaluate(gt_boxes, *sorted_and_cleaned(pred_boxes, pred_scores), iou_threshold=opts.iou)
    return EvalReport(
        result=result,
        cleaned=cleaned,
        audit=audit,
        gt=str(opts.gt),
        pred=str(opts.pred) if opts.pred is not None else None,
        model=opts.model,
        gt_rows_skipped=len(gt.issues),
        pred_rows_skipped=len(pred.issues),
        warnings=warnings,
    )


# ---------------------------------------------------------------- reading the inputs


def _read_gt(path: str, say: Warn) -> Annotations:
    """Ground truth, cleaned; says where the official scorer would have read it otherwise."""
    from acfd_deploy.data.icartoon import read_annotations

    gt = read_annotations(path, kind="auto")
    if gt.kind == "det":
        say(f"{path} has a score column (7 columns); using its boxes as ground truth. Were --gt and --pred swapped?")
    if gt.issues:
        kept = sum(i.reason in _GT_KEPT_BY_OFFICIAL for i in gt.issues)
        note = (
            f"; the official scorer would keep the {kept} row(s) with reversed corners, nan/inf or no name as faces "
            "(counted in recall), so its AP can differ"
            if kept
            else ""
        )
        say(gt.issue_summary() + note)
    return gt


def _read_pred(path: str, allow_empty: bool, say: Warn) -> Annotations:
    """Detections with their suspect rows kept, as the official scorer keeps them."""
    from acfd_deploy.data.icartoon import Annotations, read_annotations

    if _is_blank(Path(path)):
        if not allow_empty:
            raise AcfdError(f"{path} is empty: no detections to score (pass --allow-empty-pred to score it as AP 0)")
        say(f"{path} is empty: no detections, AP is 0")
        return Annotations(kind="det", scores={}, source=path)
    pred = read_annotations(path, kind="det", keep_suspect=True)
    if pred.issues:
        say(
            pred.issue_summary() + "; the official scorer cannot parse such rows (it would stop on this file), "
            "so there is no official AP of this file: AP50 here scores the other rows"
        )
    return pred


def _is_blank(path: Path) -> bool:
    try:
        return path.is_file() and not path.read_bytes().strip()
    except OSError:
        return False


def _present_images(gt: Annotations, gt_name: str, images_dir: Path, say: Warn) -> dict[str, np.ndarray]:
    """The ground truth of the images that are in ``images_dir``: a face on an image the
    detector never saw is no miss of the detector's."""
    names = list(gt.boxes)
    present = [n for n in names if (images_dir / n).is_file()]
    present_set = set(present)
    missing = [n for n in names if n not in present_set]
    if not present:
        raise AcfdError(f"none of the {len(names)} images named in {gt_name} is in {images_dir} (first: {names[0]})")
    if not missing:
        return gt.boxes
    say(
        f"{len(missing)} of {len(names)} ground-truth images are not in {images_dir} ({_examples(missing)}); "
        f"scoring the other {len(present)}"
    )
    return {n: gt.boxes[n] for n in present}


def _image_sizes(directory: Path, names: Sequence[str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Sizes of the named images in ``directory`` (names from :func:`_present_images`, so
    all there); (sizes, the names that could not be read)."""
    from acfd_deploy.pipeline.io import ImageLoadError, image_size

    sizes, unreadable = {}, []
    for name in names:
        try:
            sizes[name] = image_size(directory / name)
        except ImageLoadError:
            unreadable.append(name)
    return sizes, unreadable


# ---------------------------------------------------------------- running a detector


def _run_detector(
    detector: DetectorSource, names: list[str], images_dir: Path, progress: bool, say: Warn
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, tuple[int, int]], list[str]]:
    """The detector's boxes and scores (float64) and the image sizes, per image name; and
    the names of the images that could not be read. ``names`` come from
    :func:`_present_images`, so all are in ``images_dir``."""
    from tqdm import tqdm

    from acfd_deploy.pipeline import ImageLoadError

    paths = [images_dir / n for n in names]
    built = callable(detector)  # a detector made here is closed here; a caller's stays open
    if callable(detector):
        detector = detector()
    boxes, scores, sizes, failed = {}, {}, {}, []
    bar = tqdm(total=len(paths), desc="eval", unit="img", disable=None if progress else True, file=sys.stderr)
    with detector.runner if built else contextlib.nullcontext():
        for path, result in detector.detect_paths(paths):
            bar.update(1)
            if isinstance(result, ImageLoadError):
                failed.append(path.name)
                with tqdm.external_write_mode(file=sys.stderr):  # the bar steps aside while the warning is shown
                    say(str(result))
                continue
            boxes[path.name], scores[path.name] = result.boxes.astype(np.float64), result.scores.astype(np.float64)
            sizes[path.name] = (result.height, result.width)
    bar.close()
    return boxes, scores, sizes, failed


def _as_csv(boxes: dict[str, np.ndarray], scores: dict[str, np.ndarray], save_to: str | None) -> Annotations:
    """The detections as the CSV ``save_to`` gets and read back, so that they score
    exactly as that CSV does (coordinates to 0.01 pixel, scores to 1e-6)."""
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


# ---------------------------------------------------------------- warnings and numbers


def _warn_about_detections(source: str, audit: DetectionAudit, say: Warn) -> None:
    """The rows and images the official scorer takes as they are, where the file most
    likely meant something else."""
    if audit.reversed_lines:
        say(
            f"{source}: {len(audit.reversed_lines)} row(s) with reversed corners (x2 < x1 or y2 < y1) "
            f"({_line_list(audit.reversed_lines)}): "
            "kept as detections, as the official scorer keeps them (normally false positives)"
        )
    if audit.non_finite_lines:
        say(
            f"{source}: {len(audit.non_finite_lines)} row(s) with a nan or inf value ({_line_list(audit.non_finite_lines)}): "
            "kept as detections, as the official scorer keeps them"
        )
    if audit.unsorted_images:
        say(
            f"{source}: {len(audit.unsorted_images)} of {audit.num_images} image(s) have rows not in descending score order "
            f"(first out-of-order row: {_line_list(audit.unsorted_lines)}): the official scorer matches each image's detections "
            "in file order, not by score"
        )


def _line_list(lines: Sequence[int], n: int = 3) -> str:
    return ("line " if len(lines) == 1 else "lines ") + ", ".join(map(str, lines[:n])) + (", ..." if len(lines) > n else "")


def _examples(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def tell_apart(a: float, b: float) -> str:
    """``b`` with 4 decimals, or as many more as it takes to tell it from ``a``: a second AP
    printed next to the first must not read the same when it is not."""
    for digits in range(4, 18):
        if f"{a:.{digits}f}" != f"{b:.{digits}f}":
            return f"{b:.{digits}f}"
    return repr(b)
