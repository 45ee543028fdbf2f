"""Reading and writing iCartoonFace CSVs, forgivingly.

No header; pixel coordinates. Training files have 5 columns ``image,x1,y1,x2,y2``,
validation files 6 ``image,x1,y1,x2,y2,face``, detections 7
``image,x1,y1,x2,y2,face,score``. Real annotation files have the odd broken row; one
bad row must cost that row (reported with its line number), not the whole run.

Detections can instead be read the way the challenge's official scorer reads them
(``keep_suspect=True``): every row whose five numbers Python's ``float()`` parses is
kept, including boxes with reversed corners and ``nan``/``inf`` values.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path, require_file

KIND_COLUMNS = {"train": 5, "val": 6, "det": 7}
FACE_LABEL = "face"


@dataclass(frozen=True)
class CsvIssue:
    line: int
    reason: str


@dataclass
class Annotations:
    """Boxes ``[K, 4]`` (float64, xyxy) per image, scores ``[K]`` for detections.

    Images keep the order in which the file first names them, and each image's boxes
    the order of its rows; ``lines`` holds each box's line number in the file and
    ``issues`` the rows skipped.
    """

    kind: str
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, np.ndarray] | None = None
    rows: int = 0
    issues: list[CsvIssue] = field(default_factory=list)
    source: str = ""
    lines: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_boxes(self) -> int:
        return sum(len(b) for b in self.boxes.values())

    def issue_summary(self, examples: int = 3) -> str:
        """One line: how many rows were skipped, why, and where (first line numbers)."""
        if not self.issues:
            return ""
        by_reason: dict[str, list[int]] = defaultdict(list)
        for issue in self.issues:
            by_reason[issue.reason].append(issue.line)
        parts = []
        for reason, lines in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            where = ", ".join(str(n) for n in lines[:examples]) + (", ..." if len(lines) > examples else "")
            parts.append(f"{len(lines)} {reason} (line {where})")
        return f"{self.source or 'CSV'}: skipped {len(self.issues)} row(s): " + "; ".join(parts)


def _parse_any_float(text: str) -> float | None:
    """``float(text)``, as the official scorer parses (``nan`` and ``inf`` included)."""
    try:
        return float(text)
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _detect_kind(rows: list[tuple[int, list[str]]]) -> str:
    counts = Counter(len(r) for _, r in rows if len(r) in KIND_COLUMNS.values())
    if not counts:
        seen = sorted({len(r) for _, r in rows})
        raise AcfdError(f"no row has 5, 6 or 7 columns (found {', '.join(map(str, seen))}); not an iCartoonFace CSV")
    width = counts.most_common(1)[0][0]
    return next(k for k, v in KIND_COLUMNS.items() if v == width)


def read_annotations(path: str | os.PathLike[str], kind: str = "auto", keep_suspect: bool = False) -> Annotations:
    """Read a training, validation or detection CSV; malformed rows become ``issues``.

    ``kind`` is ``train``, ``val``, ``det`` or ``auto`` (the most common column count).
    By default rows with reversed corners or non-finite numbers are skipped (``issues``);
    with ``keep_suspect`` they are kept as they are, as the official scorer keeps them,
    and only rows it could not parse (wrong column count, text ``float()`` rejects) are
    skipped (:mod:`acfd_deploy.eval.audit` finds the suspect rows kept).
    Raises :class:`AcfdError` when the file is missing, unreadable, empty, of the wrong
    kind (``det`` asked but the file has no score column) or has no usable row at all.
    """
    path = Path(path)
    if kind != "auto" and kind not in KIND_COLUMNS:
        raise AcfdError(f"unknown CSV kind {kind!r}; expected auto, train, val or det")
    require_file(path, "CSV")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise AcfdError(f"{path} is not a UTF-8 text file (is it really a CSV?)") from None
    except OSError as exc:
        raise AcfdError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows: list[tuple[int, list[str]]] = []
    try:
        for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
            if row and any(cell.strip() for cell in row):
                rows.append((line_no, [cell.strip() for cell in row]))
    except csv.Error as exc:
        raise AcfdError(f"{path} is not a valid CSV: {exc}") from None
    if not rows:
        raise AcfdError(f"{path} is empty (no rows)")
    found = _detect_kind(rows)
    if kind == "auto":
        kind = found
    elif kind == "det" and found != "det":
        raise AcfdError(
            f"{path} has {KIND_COLUMNS[found]} columns, so no score column: a prediction CSV needs 7 columns "
            "image,x1,y1,x2,y2,face,score (AP ranks detections by score)"
        )
    width = KIND_COLUMNS[kind]
    out = Annotations(kind=kind, scores={} if kind == "det" else None, source=str(path))
    box_lists: dict[str, list[list[float]]] = {}
    score_lists: dict[str, list[float]] = {}
    line_lists: dict[str, list[int]] = {}
    for line_no, row in rows:
        reason = _check_row_parses(row, width, kind) if keep_suspect else _check_row(row, width, kind)
        if reason is not None:
            if not (line_no == rows[0][0] and reason.startswith("non-numeric")):
                out.issues.append(CsvIssue(line_no, reason))
            else:  # a header line: CSVs from other tools often have one
                out.issues.append(CsvIssue(line_no, "header-like row"))
            continue
        name = row[0]
        x1, y1, x2, y2 = (float(v) for v in row[1:5])
        box_lists.setdefault(name, []).append([x1, y1, x2, y2])
        line_lists.setdefault(name, []).append(line_no)
        if kind == "det":
            score_lists.setdefault(name, []).append(float(row[6]))
        out.rows += 1
    if out.rows == 0:
        raise AcfdError(f"{path} has no usable row. {out.issue_summary()}")
    out.boxes = {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in box_lists.items()}
    out.lines = {k: np.asarray(v, dtype=np.int64) for k, v in line_lists.items()}
    if out.scores is not None:
        out.scores = {k: np.asarray(v, dtype=np.float64) for k, v in score_lists.items()}
    return out


def _check_row(row: list[str], width: int, kind: str) -> str | None:
    if len(row) != width:
        return f"wrong column count (expected {width})"
    if not row[0]:
        return "empty image name"
    if any(_parse_any_float(v) is None for v in row[1:5]):
        return "non-numeric coordinate"
    if any(_parse_float(v) is None for v in row[1:5]):
        return "non-finite coordinate (nan or inf)"
    x1, y1, x2, y2 = (float(v) for v in row[1:5])
    if x2 < x1:
        return "box with x2 < x1"
    if y2 < y1:
        return "box with y2 < y1"
    if kind == "det" and _parse_any_float(row[6]) is None:
        return "non-numeric score"
    if kind == "det" and _parse_float(row[6]) is None:
        return "non-finite score (nan or inf)"
    return None


def _check_row_parses(row: list[str], width: int, kind: str) -> str | None:
    """Why the official scorer could not read ``row`` (None: it could, whatever the values)."""
    if len(row) != width:
        return f"wrong column count (expected {width})"
    if any(_parse_any_float(v) is None for v in row[1:5]):
        return "non-numeric coordinate"
    if kind == "det" and _parse_any_float(row[6]) is None:
        return "non-numeric score"
    return None


def check_inside(ann: Annotations, sizes: Mapping[str, tuple[int, int]], clip: bool = True) -> tuple[int, int]:
    """Count (and optionally clip) boxes reaching outside their image; ``sizes`` is ``name -> (H, W)``.

    Returns ``(boxes outside, images affected)``. With the +1 convention the last
    pixel column is ``W - 1``. Negative coordinates are outside any image; the right
    and bottom edges are checked only where the size is known.
    """
    boxes_out = images_out = 0
    for name, boxes in ann.boxes.items():
        if len(boxes) == 0:
            continue
        h, w = sizes.get(name, (math.inf, math.inf))
        bad = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w - 1) | (boxes[:, 3] > h - 1)
        if bad.any():
            boxes_out += int(bad.sum())
            images_out += 1
            if clip:
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
                boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
    return boxes_out, images_out


def _fmt(value: float, decimals: int) -> str:
    if decimals == 0:
        return str(int(round(value)))
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def write_annotations(
    path: str | os.PathLike[str],
    boxes: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    scores: Mapping[str, np.ndarray] | None = None,
    kind: str = "val",
    decimals: int = 0,
    score_decimals: int = 6,
) -> Path:
    """Write ``train`` (5 columns), ``val`` (6) or ``det`` (7, needs ``scores``) rows, atomically.

    Ground truth is integer pixels (``decimals=0``); detections keep ``decimals`` places.
    """
    if kind not in KIND_COLUMNS:
        raise AcfdError(f"unknown CSV kind {kind!r}")
    if kind == "det" and scores is None:
        raise AcfdError("a detection CSV needs scores")
    items = list(boxes.items()) if isinstance(boxes, Mapping) else list(boxes)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for name, b in items:
            b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
            s = np.asarray(scores[name]).reshape(-1) if scores is not None else None
            for i, box in enumerate(b):
                row = [name, *(_fmt(v, decimals) for v in box)]
                if kind != "train":
                    row.append(FACE_LABEL)
                if kind == "det":
                    row.append(_fmt(float(s[i]), score_decimals))  # type: ignore[index]
                writer.writerow(row)
    return Path(path)
