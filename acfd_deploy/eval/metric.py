"""The challenge's scorer: all-points VOC AP at IoU >= 0.5 with +1 pixel areas.

Definition (DESIGN.md section 5), which every function here follows:

* Boxes are inclusive integer-pixel rectangles: ``x1..x2`` covers ``x2 - x1 + 1`` pixels,
  so widths, heights, intersections and areas all carry the ``+1`` (the VOC devkit rule).
* Within each image, detections are matched in descending score order (ties keep file
  order). A detection takes the ground-truth box it overlaps most; if that IoU is
  >= 0.5 and the box is still free, it is a true positive and the box is taken.
  Otherwise, including when its best box is already taken, it is a false positive: it
  does not fall back to the second-best box (again the devkit rule).
* Detections on images that have no ground truth are ignored (they are neither true
  nor false positives); every ground-truth box counts towards recall.
* No cap on detections per image.
* AP is the area under the precision envelope over all recall points (VOC 2010+).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLD = 0.5


def iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``[N, M]`` of ``a [N, 4]`` and ``b [M, 4]`` with +1 pixel areas."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
    area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def match_image(gt: np.ndarray, det: np.ndarray, scores: np.ndarray, iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """True-positive flags for one image's detections, in the order given.

    The loop is over detections in score order and is inherently sequential (a taken
    box changes later outcomes); the IoUs themselves are one vectorized matrix.
    """
    det = np.asarray(det, dtype=np.float64).reshape(-1, 4)
    tp = np.zeros(len(det), dtype=bool)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    if len(det) == 0 or len(gt) == 0:
        return tp
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ious = iou_plus1(det, gt)
    best = ious.argmax(axis=1)
    best_iou = ious[np.arange(len(det)), best]
    taken = np.zeros(len(gt), dtype=bool)
    for d in order:
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
            "best_f1_score_threshold": None if np.isnan(thr) else thr,  # type: ignore[dict-item]
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
    """Score detections against ground truth, keyed by image name.

    An image listed in ``gt`` with zero boxes still counts as an image with ground
    truth (its detections are all false positives); an image absent from ``gt`` does not.
    """
    num_gt = int(sum(len(np.reshape(b, (-1, 4))) for b in gt.values()))
    flags, scores = [], []
    num_ignored = num_pred = 0
    for name, boxes in pred_boxes.items():
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.asarray(pred_scores[name], dtype=np.float64).reshape(-1)
        num_pred += len(boxes)
        if name not in gt:
            num_ignored += len(boxes)
            continue
        flags.append(match_image(gt[name], boxes, s, iou_threshold))
        scores.append(s)
    tp_flags = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    order = np.argsort(-all_scores, kind="stable")
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
        num_ignored=num_ignored,
        num_tp=int(tp[-1]) if len(tp) else 0,
        iou_threshold=iou_threshold,
        curve_recall=recall,
        curve_precision=precision,
        curve_scores=all_scores,
    )
