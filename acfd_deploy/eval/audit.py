"""What in a detection file the official scorer takes as it is, and what the file would
score sorted and cleaned.

The official scorer (see :mod:`acfd_deploy.eval.metric`) validates nothing: a row with
reversed corners or a ``nan``/``inf`` value is a detection, and each image's detections
are matched in file order, not by score. :func:`audit_detections` finds such rows and
images so that they can be reported; :func:`sorted_and_cleaned` gives the detections the
file presumably meant (suspect rows dropped, each image sorted best first, stably), whose
AP is worth showing next to the official one when the two differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass
class DetectionAudit:
    """Line numbers (1-based, in the file) of the rows and images worth a warning."""

    reversed_lines: list[int] = field(default_factory=list)  # finite rows with x2 < x1 or y2 < y1
    non_finite_lines: list[int] = field(default_factory=list)  # rows with a nan or inf coordinate or score
    unsorted_lines: list[int] = field(default_factory=list)  # per unsorted image: its first row scoring above an earlier one
    unsorted_images: list[str] = field(default_factory=list)
    num_images: int = 0

    @property
    def clean(self) -> bool:
        return not (self.reversed_lines or self.non_finite_lines or self.unsorted_images)


def _lines(lines: Mapping[str, np.ndarray] | None, name: str, n: int) -> np.ndarray:
    if lines is not None and name in lines:
        return np.asarray(lines[name]).reshape(-1)
    return np.full(n, -1, dtype=np.int64)


def suspect_rows(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(non-finite, reversed)`` over one image's rows; a non-finite row is not also
    counted as reversed."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    with np.errstate(invalid="ignore"):
        reversed_ = finite & ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    return ~finite, reversed_


def audit_detections(
    boxes: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray], lines: Mapping[str, np.ndarray] | None = None
) -> DetectionAudit:
    """Suspect rows, and images whose rows are not in descending score order: a row scoring
    strictly above an earlier row of its image (``nan`` scores are left out of this test)."""
    audit = DetectionAudit(num_images=len(boxes))
    for name, b in boxes.items():
        s = np.asarray(scores[name], dtype=np.float64).reshape(-1)
        where = _lines(lines, name, len(s))
        non_finite, reversed_ = suspect_rows(b, s)
        audit.non_finite_lines += [int(n) for n in where[non_finite]]
        audit.reversed_lines += [int(n) for n in where[reversed_]]
        with np.errstate(invalid="ignore"):
            rises = np.nonzero(s[1:] > np.fmin.accumulate(s)[:-1])[0] if len(s) > 1 else np.zeros(0, dtype=np.int64)
        if len(rises):
            audit.unsorted_images.append(name)
            audit.unsorted_lines.append(int(where[rises[0] + 1]))
    audit.non_finite_lines.sort()
    audit.reversed_lines.sort()
    return audit


def sorted_and_cleaned(
    boxes: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The detections without rows with reversed corners or non-finite values, each
    image's rows sorted by descending score (stable: ties keep file order)."""
    out_boxes, out_scores = {}, {}
    for name, b in boxes.items():
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        s = np.asarray(scores[name], dtype=np.float64).reshape(-1)
        non_finite, reversed_ = suspect_rows(b, s)
        keep = ~(non_finite | reversed_)
        b, s = b[keep], s[keep]
        order = np.argsort(-s, kind="stable")
        out_boxes[name], out_scores[name] = b[order], s[order]
    return out_boxes, out_scores
