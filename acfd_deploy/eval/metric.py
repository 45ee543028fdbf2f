"""The challenge's scorer: all-points VOC AP at IoU >= 0.5 with +1 pixel areas.

These functions reproduce the iCartoon Face Challenge's official scorer (its ``run.py``,
a VOC devkit ``voc_eval`` variant) bit for bit, including on input it does not check:

* Boxes are inclusive pixel rectangles: ``x1..x2`` covers ``x2 - x1 + 1`` pixels, so
  widths, heights, intersections and areas all carry the ``+1``. The IoU is computed in
  float64 with the devkit's operations in the devkit's order
  (``iw = max(min(x2) - max(x1) + 1, 0)``, likewise ``ih``; ``inter = iw * ih``;
  ``union = area_det + area_gt - inter``; ``iou = inter / union``) and nothing is
  guarded: a box with reversed corners (``x2 < x1`` or ``y2 < y1``) or ``nan``/``inf``
  values gets whatever IoU numpy computes (0, negative, ``inf`` or ``nan``); it is a
  detection like any other, normally a false positive.
* Each image's detections are matched **in the order given** (file order for a CSV; the
  scorer does not sort them by score first). A detection takes the ground-truth box it
  overlaps most (``np.max``/``np.argmax`` over the image's boxes: a ``nan`` IoU wins
  both); if that IoU is >= 0.5 and the box is still free, it is a true positive and the
  box is taken. Otherwise, including when its best box is already taken, it is a false
  positive: it does not fall back to the second-best box.
* Only images in the ground truth are visited, in the order the ground truth first names
  them; their detections' flags and scores are concatenated in that order. Detections on
  other images are ignored (neither true nor false positives); every ground-truth box
  counts towards recall. No cap on detections per image.
* Then all scores are ranked with numpy's default ``np.argsort(-scores)`` (not a stable
  sort: tied scores come out in whatever order numpy's default gives, which the AP can
  depend on), the flags are reordered and cumulated: ``recall = tp / n_gt``,
  ``precision = tp / max(tp + fp, eps)``.
* AP is the all-points VOC AP: ``mrec = [0, recall, 1]``, ``mpre = [0, precision, 0]``,
  precision made monotone from the right, and ``sum((mrec[i+1] - mrec[i]) * mpre[i+1])``
  over the steps where recall changes (``np.sum``, as the devkit does).

A detector that writes each image's detections best first (as ``acfd-detect`` does) is
matched in score order, so for it the order rule changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLD = 0.5


def iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``[N, M]`` of ``a [N, 4]`` (detections) and ``b [M, 4]`` (ground truth)
    with +1 pixel areas, exactly as the VOC devkit computes it (unguarded: see the module)."""
    bb = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    gt = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    ixmin = np.maximum(gt[..., 0], bb[..., 0])
    iymin = np.maximum(gt[..., 1], bb[..., 1])
    ixmax = np.minimum(gt[..., 2], bb[..., 2])
    iymax = np.minimum(gt[..., 3], bb[..., 3])
    with np.errstate(all="ignore"):
        iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
        ih = np.maximum(iymax - iymin + 1.0, 0.0)
        inters = iw * ih
        uni = (
            (bb[..., 2] - bb[..., 0] + 1.0) * (bb[..., 3] - bb[..., 1] + 1.0)
            + (gt[..., 2] - gt[..., 0] + 1.0) * (gt[..., 3] - gt[..., 1] + 1.0)
            - inters
        )
        return inters / uni


def match_image(gt: np.ndarray, det: np.ndarray, scores: np.ndarray | None = None, iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """True-positive flags for one image's detections, matched in the order given.

    ``scores`` is accepted for compatibility and not used: the official scorer matches
    in file order, so pass the detections best first if score order is what you mean.
    The loop is sequential (a taken box changes later outcomes); the IoUs are one matrix.
    """
    det = np.asarray(det, dtype=np.float64).reshape(-1, 4)
    tp = np.zeros(len(det), dtype=bool)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    if len(det) == 0 or len(gt) == 0:
        return tp
    ious = iou_plus1(det, gt)
    best = ious.argmax(axis=1)
    best_iou = ious.max(axis=1)
    taken = np.zeros(len(gt), dtype=bool)
    for d in range(len(det)):
        if best_iou[d] >= iou_threshold and not taken[best[d]]:
            taken[best[d]] = True
            tp[d] = True
    return tp


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-points AP: area under the monotone precision envelope (VOC 2010+)."""
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class EvalResult:
    """AP and the counts a reader needs to trust it."""

    ap: float
    precision: float  # over all scored detections (at the lowest score)
    recall: float  # the highest recall reached
    num_gt_images: int
    num_gt_boxes: int
    num_pred_images: int
    num_pred_boxes: int
    num_scored: int  # detections on images with ground truth
    num_ignored: int  # detections on images without ground truth
    num_tp: int
    iou_threshold: float = IOU_THRESHOLD
    curve_recall: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    curve_precision: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    curve_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def best_f1(self) -> tuple[float, float]:
        """(F1, score threshold) at the best point of the curve; (0, nan) without TPs."""
        p, r = self.curve_precision, self.curve_recall
        if len(p) == 0:
            return 0.0, float("nan")
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        i = int(f1.argmax())
        return float(f1[i]), float(self.curve_scores[i])

    def to_dict(self) -> dict[str, float | int]:
        f1, thr = self.best_f1()
        return {
            "AP50": self.ap,
            "precision": self.precision,
            "recall": self.recall,
            "best_f1": f1,
            "best_f1_score_threshold": thr if np.isfinite(thr) else None,  # type: ignore[dict-item]
            "iou_threshold": self.iou_threshold,
            "gt_images": self.num_gt_images,
            "gt_boxes": self.num_gt_boxes,
            "pred_images": self.num_pred_images,
            "pred_boxes": self.num_pred_boxes,
            "scored_detections": self.num_scored,
            "ignored_detections": self.num_ignored,
            "true_positives": self.num_tp,
        }


def evaluate(
    gt: Mapping[str, np.ndarray],
    pred_boxes: Mapping[str, np.ndarray],
    pred_scores: Mapping[str, np.ndarray],
    iou_threshold: float = IOU_THRESHOLD,
) -> EvalResult:
    """Score detections against ground truth, keyed by image name, by the official rules.

    Images are visited in the order of ``gt``; each image's detections are matched in
    the order of ``pred_boxes[name]`` (pass them best first). An image listed in ``gt``
    with zero boxes still counts as an image with ground truth (its detections are all
    false positives); an image absent from ``gt`` does not.
    """
    num_gt = int(sum(len(np.reshape(b, (-1, 4))) for b in gt.values()))
    num_pred = int(sum(len(np.reshape(b, (-1, 4))) for b in pred_boxes.values()))
    flags, scores = [], []
    for name, faces in gt.items():
        if name not in pred_boxes:
            continue
        boxes = np.asarray(pred_boxes[name], dtype=np.float64).reshape(-1, 4)
        s = np.asarray(pred_scores[name], dtype=np.float64).reshape(-1)
        if len(s) != len(boxes):
            raise ValueError(f"{name}: {len(boxes)} boxes but {len(s)} scores")
        flags.append(match_image(faces, boxes, iou_threshold=iou_threshold))
        scores.append(s)
    tp_flags = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    order = np.argsort(-all_scores)  # numpy's default kind, as the official scorer: ties as it orders them
    tp_flags, all_scores = tp_flags[order], all_scores[order]
    tp = np.cumsum(tp_flags)
    fp = np.cumsum(~tp_flags)
    recall = tp / num_gt if num_gt else np.zeros(len(tp))
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(recall, precision) if num_gt and len(tp) else 0.0
    return EvalResult(
        ap=ap,
        precision=float(precision[-1]) if len(precision) else 0.0,
        recall=float(recall[-1]) if len(recall) else 0.0,
        num_gt_images=len(gt),
        num_gt_boxes=num_gt,
        num_pred_images=len(pred_boxes),
        num_pred_boxes=num_pred,
        num_scored=len(tp_flags),
        num_ignored=num_pred - len(tp_flags),
        num_tp=int(tp[-1]) if len(tp) else 0,
        iou_threshold=iou_threshold,
        curve_recall=recall,
        curve_precision=precision,
        curve_scores=all_scores,
    )
