"""The challenge metric on hand-computed cases and against a devkit-style reference."""

from __future__ import annotations

import numpy as np
import pytest

from acfd_deploy.eval.metric import evaluate, iou_plus1, match_image, voc_ap

G = np.array([[0, 0, 9, 9]], dtype=float)  # 10 x 10 pixels with the +1 rule


def _eval(gt: dict, dets: dict) -> object:
    boxes = {k: np.array([d[:4] for d in v], dtype=float).reshape(-1, 4) for k, v in dets.items()}
    scores = {k: np.array([d[4] for d in v], dtype=float) for k, v in dets.items()}
    return evaluate({k: np.asarray(v, dtype=float) for k, v in gt.items()}, boxes, scores)


def test_iou_uses_plus_one_areas() -> None:
    # [0,0,4,9] covers 5 x 10 = 50 pixels of the 100: IoU exactly 0.5 (0.444 without +1)
    assert iou_plus1(np.array([[0, 0, 4, 9]]), G)[0, 0] == pytest.approx(0.5)
    # a single pixel is a box of area 1, not 0
    assert iou_plus1(np.array([[5, 5, 5, 5]]), np.array([[5, 5, 5, 5]]))[0, 0] == pytest.approx(1.0)
    assert iou_plus1(np.array([[0, 0, 9, 9]]), np.array([[10, 0, 19, 9]]))[0, 0] == 0.0  # touching, no shared pixel
    assert iou_plus1(np.array([[0, 0, 9, 9]]), np.array([[9, 0, 18, 9]]))[0, 0] == pytest.approx(10 / 190)


def test_iou_of_exactly_half_is_a_match() -> None:
    r = _eval({"a": G}, {"a": [[0, 0, 4, 9, 0.9]]})
    assert r.num_tp == 1 and r.ap == pytest.approx(1.0)
    r = _eval({"a": G}, {"a": [[0, 0, 3, 9, 0.9]]})  # 40 / 100 pixels
    assert r.num_tp == 0 and r.ap == 0.0


def test_matching_follows_score_order_not_file_order() -> None:
    # Y (IoU 1.0, score 0.8) comes first in the file; X (IoU 0.6, score 0.9) outranks it
    y, x = [0, 0, 9, 9, 0.8], [0, 0, 5, 9, 0.9]
    r = _eval({"a": G}, {"a": [y, x]})
    # score order: X takes the face (TP at rank 1), Y is a duplicate -> AP 1.0
    # (file order would give Y the face, X a false positive at rank 1 -> AP 0.5)
    assert r.ap == pytest.approx(1.0)
    tp = match_image(G, np.array([y[:4], x[:4]]), np.array([y[4], x[4]]))
    assert tp.tolist() == [False, True]


def test_taken_box_gives_false_positive_without_fallback() -> None:
    gt = [[0, 0, 9, 9], [0, 2, 9, 11]]  # two overlapping faces
    dets = [[0, 0, 9, 9, 0.9], [0, 0, 9, 10, 0.8]]  # second: IoU 0.909 with face 1, 0.75 with face 2
    r = _eval({"a": gt}, dets={"a": dets})
    assert r.num_tp == 1
    assert r.ap == pytest.approx(0.5)  # devkit rule: no fall back to the second-best face


def test_duplicates_are_false_positives() -> None:
    r = _eval({"a": G}, {"a": [[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.8], [0, 0, 9, 9, 0.7]]})
    assert r.num_tp == 1
    assert r.ap == pytest.approx(1.0)
    assert r.precision == pytest.approx(1 / 3)
    assert r.recall == pytest.approx(1.0)


def test_all_points_ap_by_hand() -> None:
    gt = {"a": [[0, 0, 9, 9]], "b": [[20, 20, 29, 29]]}
    dets = {"a": [[0, 0, 9, 9, 0.9], [50, 50, 60, 60, 0.8]], "b": [[20, 20, 29, 29, 0.7]]}
    r = _eval(gt, dets)
    # ranks: TP (r .5, p 1), FP (r .5, p .5), TP (r 1, p 2/3): AP = .5 * 1 + .5 * 2/3
    assert r.ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert r.curve_recall.tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert r.curve_precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3])


def test_images_without_ground_truth_are_ignored() -> None:
    base = _eval({"a": G}, {"a": [[0, 0, 9, 9, 0.5]]})
    r = _eval({"a": G}, {"a": [[0, 0, 9, 9, 0.5]], "nogt.jpg": [[0, 0, 9, 9, 0.99], [1, 1, 5, 5, 0.98]]})
    assert r.ap == base.ap == pytest.approx(1.0)
    assert r.num_ignored == 2 and r.num_scored == 1 and r.num_pred_boxes == 3


def test_no_detections_at_all() -> None:
    r = _eval({"a": G, "b": G}, {})
    assert r.ap == 0.0 and r.recall == 0.0 and r.precision == 0.0 and r.num_gt_boxes == 2
    r = _eval({"a": G}, {"a": []})
    assert r.ap == 0.0 and r.num_scored == 0


def test_missed_faces_lower_recall() -> None:
    r = _eval({"a": G, "b": [[0, 0, 9, 9], [20, 0, 29, 9]]}, {"a": [[0, 0, 9, 9, 0.9]]})
    assert r.recall == pytest.approx(1 / 3) and r.ap == pytest.approx(1 / 3)


def test_voc_ap_envelope() -> None:
    assert voc_ap(np.array([0.2, 0.4, 0.4, 0.8]), np.array([1.0, 0.5, 0.6, 0.4])) == pytest.approx(0.2 * 1 + 0.2 * 0.6 + 0.4 * 0.4)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def _devkit_reference(gt: dict, dets: list[tuple[str, float, np.ndarray]], thr: float = 0.5) -> float:
    """The VOC devkit's voc_eval loop, written out plainly."""
    npos = sum(len(v) for v in gt.values())
    dets = [d for d in dets if d[0] in gt]
    order = sorted(range(len(dets)), key=lambda i: (-dets[i][1], i))
    used = {k: [False] * len(v) for k, v in gt.items()}
    tp, fp = [], []
    for i in order:
        name, _, bb = dets[i]
        best, jmax = -1.0, -1
        for j, g in enumerate(gt[name]):
            iw = min(bb[2], g[2]) - max(bb[0], g[0]) + 1
            ih = min(bb[3], g[3]) - max(bb[1], g[1]) + 1
            if iw > 0 and ih > 0:
                inter = iw * ih
                uni = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
                if inter / uni > best:
                    best, jmax = inter / uni, j
        if best >= thr and not used[name][jmax]:
            used[name][jmax] = True
            tp.append(1)
            fp.append(0)
        else:
            tp.append(0)
            fp.append(1)
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec, prec = ctp / npos, ctp / np.maximum(ctp + cfp, 1e-12)
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return float(sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i]))


@pytest.mark.parametrize("seed", range(5))
def test_matches_devkit_reference_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt, pred_boxes, pred_scores, flat = {}, {}, {}, []
    for i in range(8):
        name = f"img{i}.jpg"
        k = int(rng.integers(1, 6))
        xy = rng.integers(0, 80, size=(k, 2))
        wh = rng.integers(3, 30, size=(k, 2))
        g = np.concatenate([xy, xy + wh], axis=1).astype(float)
        gt[name] = g
        n = int(rng.integers(0, 10))
        base = g[rng.integers(0, k, size=n)] if n else np.zeros((0, 4))
        jitter = rng.integers(-4, 5, size=(n, 4))
        d = base + jitter
        d[:, 2:] = np.maximum(d[:, 2:], d[:, :2])
        s = np.round(rng.random(n), 2)  # rounded: ties happen
        pred_boxes[name], pred_scores[name] = d, s
        flat += [(name, float(s[j]), d[j]) for j in range(n)]
    pred_boxes["stray.jpg"], pred_scores["stray.jpg"] = np.array([[0, 0, 5, 5.0]]), np.array([0.99])
    flat.append(("stray.jpg", 0.99, np.array([0, 0, 5, 5.0])))
    r = evaluate(gt, pred_boxes, pred_scores)
    assert r.ap == pytest.approx(_devkit_reference(gt, flat), abs=1e-12)
