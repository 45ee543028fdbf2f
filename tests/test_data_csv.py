"""iCartoonFace CSVs: round trips, kinds, and malformed rows skipped with line numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acfd_deploy.data.icartoon import Annotations, check_inside, read_annotations, write_annotations
from acfd_deploy.errors import AcfdError

BOXES = {"a.jpg": np.array([[1, 2, 30, 40], [5, 5, 9, 9]], float), "b.png": np.array([[0, 0, 99, 49]], float)}
SCORES = {"a.jpg": np.array([0.9, 0.25]), "b.png": np.array([0.123456])}


@pytest.mark.parametrize(("kind", "columns"), [("train", 5), ("val", 6), ("det", 7)])
def test_round_trip(tmp_path: Path, kind: str, columns: int) -> None:
    path = write_annotations(tmp_path / f"{kind}.csv", BOXES, SCORES if kind == "det" else None, kind=kind)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(len(line.split(",")) == columns for line in lines)
    if kind != "train":
        assert lines[0].split(",")[5] == "face"
    ann = read_annotations(path)
    assert ann.kind == kind and ann.rows == 3 and not ann.issues
    assert list(ann.boxes) == ["a.jpg", "b.png"]
    for name in BOXES:
        assert np.array_equal(ann.boxes[name], BOXES[name])
    if kind == "det":
        assert ann.scores is not None and np.allclose(ann.scores["a.jpg"], SCORES["a.jpg"])
    else:
        assert ann.scores is None


def test_detections_keep_decimals(tmp_path: Path) -> None:
    boxes = {"x.jpg": np.array([[1.256, 2.5, 30.0, 40.75]])}
    path = write_annotations(tmp_path / "d.csv", boxes, {"x.jpg": np.array([0.5])}, kind="det", decimals=2)
    assert path.read_text().strip() == "x.jpg,1.26,2.5,30,40.75,face,0.5"


def test_malformed_rows_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "gt.csv"
    path.write_text(
        "a.jpg,1,2,30,40,face\n"  # 1 ok
        "a.jpg,1,2,30\n"  # 2 too few columns
        "b.jpg,x,2,30,40,face\n"  # 3 non-numeric
        "\n"  # 4 blank: ignored, not an issue
        "b.jpg,50,2,30,40,face\n"  # 5 x2 < x1
        "b.jpg,1,60,30,40,face\n"  # 6 y2 < y1
        "c.jpg,nan,2,30,40,face\n"  # 7 non-finite
        ",1,2,3,4,face\n"  # 8 no name
        "c.jpg,0,0,10,10,face\n"  # 9 ok
    )
    ann = read_annotations(path, kind="val")
    assert ann.rows == 2 and list(ann.boxes) == ["a.jpg", "c.jpg"]
    assert [i.line for i in ann.issues] == [2, 3, 5, 6, 7, 8]
    summary = ann.issue_summary()
    assert "skipped 6 row(s)" in summary and "x2 < x1 (line 5)" in summary and "y2 < y1 (line 6)" in summary


def test_header_line_is_recognized(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("image,x1,y1,x2,y2,face,score\na.jpg,1,2,3,4,face,0.5\n")
    ann = read_annotations(path, kind="det")
    assert ann.rows == 1 and [(i.line, i.reason) for i in ann.issues] == [(1, "header-like row")]


def test_kind_detection_and_missing_scores(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("a.jpg,1,2,3,4,face\na.jpg,1,2,3,4,face,0.9\n")  # mostly 6 columns
    assert read_annotations(path).kind == "val"
    with pytest.raises(AcfdError, match="no score column"):
        read_annotations(path, kind="det")
    train = tmp_path / "t.csv"
    train.write_text("a.jpg,1,2,3,4\n")
    assert read_annotations(train).kind == "train"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"\xff\xfe\x00garbage\x00\x81", "not a UTF-8"),
        (b"a,b\nc,d\n", "no row has 5, 6 or 7 columns"),
        (b"a.jpg,9,2,3,4,face\na.jpg,x,2,3,4,face\n", "no usable row"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(AcfdError, match=message):
        read_annotations(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AcfdError, match="not found"):
        read_annotations(tmp_path / "nope.csv")


def test_check_inside_counts_and_clips() -> None:
    ann = Annotations(
        kind="val",
        boxes={
            "d": np.array([[-2.0, -1, 8, 8]]),
            "a": np.array([[-3.0, 0, 10, 10], [0, 0, 5, 5]]),
            "b": np.array([[0.0, 0, 120, 10]]),
            "c": np.array([[0.0, 0, 500, 500]]),
        },
    )
    n_boxes, n_images = check_inside(ann, {"a": (50, 50), "b": (20, 100)})
    assert (n_boxes, n_images) == (3, 3)
    assert ann.boxes["d"][0].tolist() == [0, 0, 8, 8]  # negative: outside whatever the size
    assert ann.boxes["a"][0].tolist() == [0, 0, 10, 10] and ann.boxes["b"][0].tolist() == [0, 0, 99, 10]
    assert ann.boxes["c"][0].tolist() == [0, 0, 500, 500]  # size unknown: right/bottom unchecked


def test_detections_read_as_the_official_scorer_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "pred.csv"
    path.write_text(
        "a.jpg,1,2,30,40,face,0.9\n"  # 1 ok
        "b.jpg,50,2,30,40,face,0.8\n"  # 2 x2 < x1: kept
        "a.jpg,nan,2,30,40,face,0.7\n"  # 3 nan: kept
        "a.jpg,1,2,30,40,face,inf\n"  # 4 inf score: kept
        "b.jpg,1,2,30\n"  # 5 too few columns: skipped
        "b.jpg,x,2,30,40,face,0.5\n"  # 6 non-numeric: skipped
        "b.jpg,1,2,30,40,face,high\n"  # 7 non-numeric score: skipped
    )
    ann = read_annotations(path, kind="det", keep_suspect=True)
    assert ann.rows == 4 and list(ann.boxes) == ["a.jpg", "b.jpg"]
    assert ann.lines["a.jpg"].tolist() == [1, 3, 4] and ann.lines["b.jpg"].tolist() == [2]
    assert ann.boxes["b.jpg"].tolist() == [[50, 2, 30, 40]] and np.isnan(ann.boxes["a.jpg"][1, 0])
    assert ann.scores is not None and ann.scores["a.jpg"][2] == np.inf
    assert [(i.line, i.reason) for i in ann.issues] == [
        (5, "wrong column count (expected 7)"),
        (6, "non-numeric coordinate"),
        (7, "non-numeric score"),
    ]
    strict = read_annotations(path, kind="det")  # the default still drops the suspect rows
    assert strict.rows == 1 and [i.line for i in strict.issues] == [2, 3, 4, 5, 6, 7]
