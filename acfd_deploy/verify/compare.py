"""Comparing an artifact's outputs with the reference's, as pure functions on numpy arrays.

The measurements behind the rules in :mod:`acfd_deploy.verify.rules`
(docs/design.md#verification-and-tolerances), at two levels:

* **tensor level**, for artifacts that should compute the same function to rounding
  (folded graph, ONNX fp32): the largest absolute score difference and the largest box
  coordinate difference relative to the box's magnitude, ``max(|x1|, |y1|, |x2|, |y2|, 1)``;
  both must stay within 1e-4. Why the box and not the coordinate: decoding computes
  ``x1 = cx - w / 2`` from terms of the box's magnitude, so float32 rounding is relative to
  that, and a coordinate that lands near 0 (a 179-pixel box at x1 = -1.05, measured on the
  trained demo model) carries an absolute error of ~3e-4 pixels that a per-coordinate
  relative measure would call 3e-4 "relative", failing an exact fold.
* **detection level**, for reduced-precision artifacts (fp16, int8): every reference
  detection (score >= 0.3) must be found again, i.e. the candidate's prediction at the
  same anchor overlaps it at IoU >= 0.9 and its score differs by at most 0.02. All
  artifacts of one model share their anchors (they are generated from the same feature
  shapes in every graph), so detections are matched anchor by anchor, with no NMS in
  between that could hide or invent differences.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# detections are anchors whose reference score reaches this (the operating range of the
# post-processing and of the challenge's metric), matched at the same anchor
DET_SCORE_THRESHOLD = 0.3
DET_IOU = 0.9
DET_SCORE_DIFF = 0.02


@dataclass
class TensorDiff:
    score_abs: float
    box_rel: float
    anchors: int = 0  # predictions compared (images x anchors): the evidence behind the figures

    def ok(self, score_atol: float, box_rtol: float) -> bool:
        return self.score_abs <= score_atol and self.box_rel <= box_rtol


@dataclass
class DetectionMatch:
    reference: int  # reference detections (score >= threshold)
    matched: int
    candidate: int  # candidate detections (score >= threshold), for information
    mean_iou: float  # over the reference detections
    max_score_diff: float  # over the reference detections

    @property
    def rate(self) -> float | None:
        """Matched fraction of the reference detections; None when there are none (a
        rate of nothing is not 100%)."""
        return self.matched / self.reference if self.reference else None

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "rate": self.rate}


class ShapeMismatch(ValueError):
    """The candidate's outputs do not have the reference's shapes: a wrong artifact (for
    example one that computes a different number of anchors), judged as a failure."""


def _check_pair(ref: tuple[np.ndarray, np.ndarray], cand: tuple[np.ndarray, np.ndarray]) -> None:
    (rb, rs), (cb, cs) = ref, cand
    if rb.shape != cb.shape or rs.shape != cs.shape:
        raise ShapeMismatch(
            f"output shapes differ: reference boxes {rb.shape} scores {rs.shape}, candidate boxes {cb.shape} scores {cs.shape}"
        )
    if rb.ndim != 3 or rb.shape[-1] != 4 or rs.shape != rb.shape[:2]:
        raise ValueError(f"expected boxes [B,N,4] and scores [B,N], got {rb.shape} and {rs.shape}")


def tensor_diff(ref: tuple[np.ndarray, np.ndarray], cand: tuple[np.ndarray, np.ndarray]) -> TensorDiff:
    """Largest |score difference| and largest box coordinate difference relative to the
    reference box's magnitude ``max(|x1|, |y1|, |x2|, |y2|, 1)`` (see the module docstring).

    Non-finite values anywhere give ``inf`` (a NaN must never compare as "small")."""
    _check_pair(ref, cand)
    (rb, rs), (cb, cs) = (np.asarray(a, np.float64) for a in ref), (np.asarray(a, np.float64) for a in cand)
    if not (np.isfinite(rs).all() and np.isfinite(cs).all() and np.isfinite(rb).all() and np.isfinite(cb).all()):
        return TensorDiff(float("inf"), float("inf"), int(rs.size))
    score = float(np.abs(rs - cs).max(initial=0.0))
    magnitude = np.maximum(np.abs(rb).max(axis=-1, keepdims=True), 1.0)
    box = float((np.abs(rb - cb) / magnitude).max(initial=0.0))
    return TensorDiff(score, box, int(rs.size))


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[..., i]`` with ``b[..., i]`` (xyxy, same shape ``[..., 4]``)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=-1)
    area_a = np.clip(a[..., 2:] - a[..., :2], 0, None).prod(axis=-1)
    area_b = np.clip(b[..., 2:] - b[..., :2], 0, None).prod(axis=-1)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(iou, nan=0.0)


def detection_match(
    ref: tuple[np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray],
    score_threshold: float = DET_SCORE_THRESHOLD,
    iou_threshold: float = DET_IOU,
    score_diff: float = DET_SCORE_DIFF,
) -> DetectionMatch:
    """Anchor-by-anchor match of the reference detections (score >= ``score_threshold``)."""
    _check_pair(ref, cand)
    (rb, rs), (cb, cs) = ref, cand
    keep = np.asarray(rs) >= score_threshold
    n_ref = int(keep.sum())
    n_cand = int((np.asarray(cs) >= score_threshold).sum())
    if n_ref == 0:
        return DetectionMatch(0, 0, n_cand, float("nan"), float("nan"))
    iou = paired_iou(np.asarray(rb)[keep], np.asarray(cb)[keep])
    diff = np.abs(np.asarray(rs, np.float64)[keep] - np.asarray(cs, np.float64)[keep])
    diff = np.where(np.isfinite(diff), diff, np.inf)
    matched = int(((iou >= iou_threshold) & (diff <= score_diff)).sum())
    return DetectionMatch(n_ref, matched, n_cand, float(iou.mean()), float(diff.max()))


def merge_matches(matches: list[DetectionMatch]) -> DetectionMatch:
    """Pool matches over several image groups (counts add, means are weighted)."""
    ref = sum(m.reference for m in matches)
    return DetectionMatch(
        reference=ref,
        matched=sum(m.matched for m in matches),
        candidate=sum(m.candidate for m in matches),
        mean_iou=(sum(m.mean_iou * m.reference for m in matches if m.reference) / ref) if ref else float("nan"),
        max_score_diff=max((m.max_score_diff for m in matches if m.reference), default=float("nan")),
    )


def merge_diffs(diffs: list[TensorDiff]) -> TensorDiff:
    return TensorDiff(
        max((d.score_abs for d in diffs), default=0.0), max((d.box_rel for d in diffs), default=0.0), sum(d.anchors for d in diffs)
    )
