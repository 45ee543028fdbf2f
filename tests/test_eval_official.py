"""acfd-eval against an independent transcription of the official scorer, to the last bit.

Random ground truth and prediction CSVs carry what the official scorer takes without
checking: unsorted rows, tied scores across images, duplicates, reversed corners (by
whole pixels and by fractions of one), nan and inf, rows on images without ground
truth. The AP from ``acfd-eval`` (its JSON and its printed line) and from the library
must equal ``tests/official_scorer.py``'s exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from acfd_deploy.cli import evaluate as cli
from acfd_deploy.data.icartoon import read_annotations
from acfd_deploy.eval.audit import audit_detections, sorted_and_cleaned
from acfd_deploy.eval.metric import evaluate, match_image
from acfd_deploy.eval.run import tell_apart
from tests.official_scorer import official_ap

SEEDS = range(300)


def _num(rng: np.random.Generator, v: float) -> str:
    """A coordinate as some tool might write it."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # nan, inf, -inf: what Python writes and float() reads
    if float(v).is_integer() and rng.random() < 0.7:
        return str(int(v))
    return repr(float(v)) if rng.random() < 0.5 else f"{v:.2f}"


def random_case(seed: int) -> tuple[str, str]:
    """(ground truth CSV text, prediction CSV text) for one seed."""
    rng = np.random.default_rng(seed)
    n_img = int(rng.integers(1, 7))
    names = [f"img{i}.jpg" for i in range(n_img)]
    gt_rows: list[tuple[str, list[float]]] = []
    for name in names:
        for _ in range(int(rng.integers(1, 6))):
            if rng.random() < 0.15:  # a one-pixel face: reversed detections on it give 0/0 and negative unions
                x, y = (float(v) for v in rng.integers(0, 60, size=2))
                box = [x, y, x, y]
            else:
                x, y = (float(v) for v in rng.integers(0, 60, size=2))
                w, h = (float(v) for v in rng.integers(1, 30, size=2))
                box = [x, y, x + w, y + h]
            gt_rows.append((name, box))
            if rng.random() < 0.1:
                gt_rows.append((name, list(box)))  # a duplicated face
    order = rng.permutation(len(gt_rows)) if rng.random() < 0.5 else np.arange(len(gt_rows))
    gt_rows = [gt_rows[i] for i in order]  # interleaved images: the first-named order matters

    # scores: few distinct values in some cases, so that ties (across images) are many
    levels = int(rng.choice([3, 5, 10, 100, 1000]))
    nasty = rng.random() < 0.8  # else only well-formed rows
    pred: list[tuple[str, list[float], float]] = []
    n_det = int(rng.integers(1, 80))
    for _ in range(n_det):
        name, face = gt_rows[int(rng.integers(len(gt_rows)))]
        score = float(rng.integers(0, levels)) / levels
        kind = rng.random() if nasty else rng.random() * 0.7
        if kind < 0.45:  # a jittered true box, whole or fractional pixels
            jitter = rng.integers(-3, 4, size=4) if rng.random() < 0.5 else np.round(rng.normal(0, 1.5, size=4), 2)
            box = [float(a + b) for a, b in zip(face, jitter)]
            box[2], box[3] = max(box[2], box[0]), max(box[3], box[1])
        elif kind < 0.6:  # a random box
            x, y = (float(v) for v in rng.integers(-5, 70, size=2))
            box = [x, y, x + float(rng.integers(0, 25)), y + float(rng.integers(0, 25))]
        elif kind < 0.7 and pred:  # a duplicate of an earlier row, maybe with another score
            name, box, old = pred[int(rng.integers(len(pred)))]
            box = list(box)
            score = old if rng.random() < 0.5 else score
        elif kind < 0.85:  # reversed corners, by whole pixels or by a fraction of one
            x1, y1, x2, y2 = face
            by = float(rng.integers(1, 4)) if rng.random() < 0.5 else float(np.round(rng.uniform(0.05, 0.95), 2))
            box = [x1, y1, x2, y2]
            if rng.random() < 0.5:
                box[2] = x1 - by
            if rng.random() < 0.5 or box[2] >= x1:
                box[3] = y1 - (float(rng.integers(1, 4)) if rng.random() < 0.5 else by)
            if rng.random() < 0.2:
                box = [x2, y2, x1, y1]  # fully swapped corners
        elif kind < 0.92:  # nan / inf somewhere
            box = list(face)
            bad = [math.nan, math.inf, -math.inf][int(rng.integers(3))]
            slot = int(rng.integers(5))
            if slot == 4:
                score = bad
            else:
                box[slot] = bad
        else:  # an image without ground truth
            name = f"nogt{int(rng.integers(3))}.jpg"
            box = [0.0, 0.0, 10.0, 10.0]
        pred.append((name, box, score))
    if rng.random() < 0.5:  # sorted best first within each image (stably), as a detector writes them
        pred = sorted(pred, key=lambda r: -r[2] if not math.isnan(r[2]) else math.inf)
    gt_text = "".join(f"{n},{','.join(_num(rng, v) for v in b)},face\n" for n, b in gt_rows)
    pred_text = "".join(f"{n},{','.join(_num(rng, v) for v in b)},face,{_num(rng, s)}\n" for n, b, s in pred)
    return gt_text, pred_text


@pytest.mark.parametrize("seed", SEEDS)
def test_acfd_eval_equals_official_scorer(seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt_text, pred_text = random_case(seed)
    gt, pred, js = tmp_path / "gt.csv", tmp_path / "pred.csv", tmp_path / "m.json"
    gt.write_text(gt_text)
    pred.write_text(pred_text)
    expected = official_ap(gt, pred)

    assert cli.main(["--gt", str(gt), "--pred", str(pred), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert json.loads(js.read_text())["AP50"] == expected
    assert f"AP50: {expected:.4f}" in out.splitlines()

    g = read_annotations(gt)
    p = read_annotations(pred, kind="det", keep_suspect=True)
    assert not p.issues
    assert evaluate(g.boxes, p.boxes, p.scores).ap == expected


def test_random_cases_exercise_what_matters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases above are not all easy: across the seeds, unsorted, reversed and
    non-finite rows change the AP, reversed rows can be true positives, and numpy's
    default (unstable) ranking of ties gives other APs than a stable sort would."""
    cases = []
    for seed in SEEDS:
        gt_text, pred_text = random_case(seed)
        (tmp_path / f"gt{seed}.csv").write_text(gt_text)
        (tmp_path / f"pred{seed}.csv").write_text(pred_text)
        g = read_annotations(tmp_path / f"gt{seed}.csv")
        p = read_annotations(tmp_path / f"pred{seed}.csv", kind="det", keep_suspect=True)
        assert p.scores is not None
        cases.append((g, p, evaluate(g.boxes, p.boxes, p.scores).ap))
    changed_by_cleaning = sum(evaluate(g.boxes, *sorted_and_cleaned(p.boxes, p.scores)).ap != ap for g, p, ap in cases)
    reversed_tp = 0
    for g, p, _ in cases:
        rev = set(audit_detections(p.boxes, p.scores, p.lines).reversed_lines)
        for name in g.boxes.keys() & p.boxes.keys():
            hits = match_image(g.boxes[name], p.boxes[name])
            reversed_tp += sum(bool(h) and int(line) in rev for h, line in zip(hits, p.lines[name]))
    default_argsort = np.argsort
    monkeypatch.setattr(np, "argsort", lambda a, *args, **kw: default_argsort(a, *args, **{"kind": "stable", **kw}))
    changed_by_stable_sort = sum(evaluate(g.boxes, p.boxes, p.scores).ap != ap for g, p, ap in cases)
    monkeypatch.undo()
    assert changed_by_cleaning > 100 and reversed_tp > 0
    assert changed_by_stable_sort > 0  # numpy's default sort (introsort or SIMD) reorders ties here


# --- what acfd-eval says about such files ---------------------------------------------

GT = "a.jpg,0,0,9,9,face\na.jpg,20,0,29,9,face\nb.jpg,0,0,9,9,face\n"


def _run(tmp_path: Path, gt: str, pred: str, *extra: str) -> tuple[str, str, dict]:
    (tmp_path / "gt.csv").write_text(gt)
    (tmp_path / "pred.csv").write_text(pred)
    args = ["--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"), "--json", str(tmp_path / "m.json"), *extra]
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main(args) == 0
    return out.getvalue(), err.getvalue(), json.loads((tmp_path / "m.json").read_text())


def test_reversed_nan_and_unsorted_rows_warned_and_both_aps_shown(tmp_path: Path) -> None:
    pred = (
        "a.jpg,0,0,9,9,face,0.6\n"  # 1
        "a.jpg,30,30,40,40,face,0.9\n"  # 2 unsorted: scores above line 1
        "a.jpg,29,0,20,9,face,0.8\n"  # 3 reversed corners
        "b.jpg,0,0,9,nan,face,0.95\n"  # 4 nan
        "b.jpg,0,0,9,9,face,0.5\n"  # 5
        "b.jpg,9,9,0,0,face,0.4\n"  # 6 reversed
    )
    out, err, metrics = _run(tmp_path, GT, pred)
    official = official_ap(tmp_path / "gt.csv", tmp_path / "pred.csv")
    lines = out.splitlines()
    assert f"AP50: {official:.4f}" in lines and metrics["AP50"] == official
    # official, file order: a: 0.6 TP, 0.9 FP, 0.8 FP (reversed); b: 0.95 FP (nan), 0.5 TP, 0.4 FP (reversed)
    # -> ranked FP FP FP TP TP FP, 3 faces: AP = 1/3 * 2/5 + 1/3 * 2/5
    assert official == pytest.approx(4 / 15)
    # sorted and cleaned: a: 0.9 FP, 0.6 TP; b: 0.5 TP -> ranked FP TP TP: AP = 1/3 * 2/3 + 1/3 * 2/3
    tidy = metrics["AP50_sorted_cleaned"]
    assert tidy == pytest.approx(4 / 9)
    assert f"AP50 if sorted and cleaned: {tidy:.4f}" in " ".join(lines)
    assert lines.index(f"AP50: {official:.4f}") + 1 == next(i for i, s in enumerate(lines) if s.startswith("AP50 if sorted and cleaned:"))
    warnings = [w for w in err.splitlines() if w.startswith("acfd-eval: warning:")]
    assert len(warnings) == 3
    assert any(
        "2 row(s) with reversed corners (x2 < x1 or y2 < y1) (lines 3, 6)" in w and "official scorer keeps them" in w for w in warnings
    )
    assert any("1 row(s) with a nan or inf value (line 4)" in w for w in warnings)
    assert any("1 of 2 image(s) have rows not in descending score order (first out-of-order row: line 2)" in w for w in warnings)
    assert (metrics["pred_rows_reversed"], metrics["pred_rows_non_finite"], metrics["pred_images_unsorted"]) == (2, 1, 1)


def test_no_second_ap_when_the_file_is_sorted_and_clean(tmp_path: Path) -> None:
    pred = "a.jpg,0,0,9,9,face,0.9\na.jpg,30,30,40,40,face,0.9\nb.jpg,0,0,9,9,face,0.95\na.jpg,20,0,29,9,face,0.1\n"
    out, err, metrics = _run(tmp_path, GT, pred)
    assert "sorted and cleaned" not in out and err == ""
    assert metrics["AP50_sorted_cleaned"] == metrics["AP50"] == official_ap(tmp_path / "gt.csv", tmp_path / "pred.csv")


def test_unsorted_but_same_ap_warns_without_second_ap(tmp_path: Path) -> None:
    pred = "a.jpg,20,0,29,9,face,0.5\na.jpg,0,0,9,9,face,0.9\nb.jpg,0,0,9,9,face,0.7\n"  # two faces, no conflict
    out, err, metrics = _run(tmp_path, GT, pred)
    assert "not in descending score order (first out-of-order row: line 2)" in err
    assert "sorted and cleaned" not in out and metrics["AP50"] == metrics["AP50_sorted_cleaned"] == 1.0


def test_a_file_of_reversed_rows_only_scores_zero(tmp_path: Path) -> None:
    out, err, metrics = _run(tmp_path, GT, "a.jpg,9,0,0,9,face,0.9\n")
    assert "AP50: 0.0000" in out.splitlines() and metrics["AP50"] == 0.0 and metrics["pred_rows_reversed"] == 1
    assert "(line 1)" in err


def test_unparseable_prediction_rows_skipped_with_a_note(tmp_path: Path) -> None:
    out, err, metrics = _run(tmp_path, GT, "a.jpg,0,0,9,9,face,0.9\na.jpg,0,0,9\nb.jpg,0,zero,9,9,face,0.8\n")
    assert "skipped 2 row(s)" in err and "official scorer cannot parse such rows" in err
    assert metrics["pred_rows_skipped"] == 2 and metrics["AP50"] == pytest.approx(1 / 3)


def test_ground_truth_cleaning_is_said(tmp_path: Path) -> None:
    _, err, metrics = _run(tmp_path, GT + "b.jpg,9,0,0,9,face\nb.jpg,-3,0,9,9,face\n", "a.jpg,0,0,9,9,face,0.9\n")
    assert "skipped 1 row(s): 1 box with x2 < x1 (line 4)" in err and "official scorer would keep the 1 row(s)" in err
    assert "1 ground-truth box(es) on 1 image(s) reach outside their image; clipped to it (the official scorer does not clip" in err
    assert metrics["gt_boxes"] == 4


def test_predictions_outside_the_image_are_scored_unclipped(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (40, 20)).save(tmp_path / "imgs" / name)
    # [-12..9] x [0..9]: IoU 100/220 with [0..9]: a false positive unclipped, a match clipped to [0..9]
    pred = "b.jpg,-12,0,9,9,face,0.9\n"
    out, err, metrics = _run(tmp_path, GT, pred, "--images", str(tmp_path / "imgs"))
    assert "1 predicted box(es) on 1 image(s) reach outside their image; scored unclipped" in err
    assert metrics["AP50"] == 0.0 == official_ap(tmp_path / "gt.csv", tmp_path / "pred.csv")
    assert (tmp_path / "pred.csv").read_text() == pred  # and the file is left alone


def test_second_ap_gets_the_digits_that_tell_it_apart() -> None:
    assert tell_apart(0.5671, 0.5701) == "0.5701"
    assert tell_apart(0.56710001, 0.56710004) == "0.56710004"


def test_audit_and_sorted_and_cleaned() -> None:
    boxes = {
        "a": np.array([[0, 0, 9, 9], [5, 5, 1, 9], [0, 0, 9, 9], [0, 0, 4, 4], [0, 0, 3, 3.0]]),
        "b": np.array([[0, 0, 9, 9], [1, 1, 8, 8.0]]),
    }
    scores = {"a": np.array([0.5, 0.9, np.nan, 0.5, 0.7]), "b": np.array([0.9, 0.9])}
    lines = {"a": np.array([1, 2, 4, 5, 6]), "b": np.array([3, 7])}
    audit = audit_detections(boxes, scores, lines)
    assert audit.reversed_lines == [2] and audit.non_finite_lines == [4]
    assert audit.unsorted_images == ["a"] and audit.unsorted_lines == [2]  # 0.9 after 0.5; ties are sorted
    assert not audit.clean and audit_detections({"b": boxes["b"]}, {"b": scores["b"]}).clean
    b, s = sorted_and_cleaned(boxes, scores)
    assert s["a"].tolist() == [0.7, 0.5, 0.5] and b["a"].tolist() == [[0, 0, 3, 3], [0, 0, 9, 9], [0, 0, 4, 4]]  # stable
    assert b["b"].tolist() == boxes["b"].tolist()
