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


def test_matching_follows_file_order_not_score_order() -> None:
    # Y (IoU 1.0, score 0.8) comes first in the file; X (IoU 0.6, score 0.9) outranks it
    y, x = [0, 0, 9, 9, 0.8], [0, 0, 5, 9, 0.9]
    r = _eval({"a": G}, {"a": [y, x]})
    # the official scorer matches in file order: Y takes the face, X is a false positive
    # at rank 1 -> AP 0.5 (score order would give X the face and AP 1.0)
    assert r.ap == pytest.approx(0.5)
    tp = match_image(G, np.array([y[:4], x[:4]]), np.array([y[4], x[4]]))
    assert tp.tolist() == [True, False]
    assert _eval({"a": G}, {"a": [x, y]}).ap == pytest.approx(1.0)  # best first: score order


def test_reversed_and_non_finite_boxes_are_scored_as_numpy_computes() -> None:
    one = np.array([[5.0, 5, 5, 5]])  # a one-pixel face
    iou = iou_plus1(np.array([[3.0, 5, 1, 5], [5, 5, 4.5, 5], [5, 5, 3, 3], [np.nan, 5, 5, 5], [-np.inf, 5, np.inf, 5]]), one)
    # area -1 + 1 - 0 = 0: 0/0; 0.5 pixel wide: 0.5/1; area (-1)(-1) = 1, no overlap: 0; nan; inf area: 0
    assert np.isnan(iou[0, 0]) and iou[1, 0] == 0.5 and iou[2, 0] == 0.0 and np.isnan(iou[3, 0]) and iou[4, 0] == 0.0
    # a row reversed by half a pixel still overlaps: here a true positive, as the official scorer has it
    assert _eval({"a": one}, {"a": [[5, 5, 4.5, 5, 0.9]]}).num_tp == 1
    assert _eval({"a": G}, {"a": [[1, 0, 0.5, 9, 0.9]]}).num_tp == 0  # 0.5 x 10 pixels: IoU 0.05
    r = _eval({"a": one, "b": G}, {"a": [[3, 5, 1, 5, 0.9]], "b": [[0, 0, 9, 9, np.nan], [9, 9, 0, 0, 0.8]]})
    # nan IoU and a reversed box: false positives; the one TP (nan score) ranks last: 0.5 * 1/3
    assert r.num_scored == 3 and r.num_tp == 1 and r.ap == pytest.approx(1 / 6)


def test_images_are_visited_in_ground_truth_order_and_ties_ranked_by_numpy_default() -> None:
    # 40 detections on 20 images, scores tied in two groups: the AP depends on how numpy's
    # default (unstable) argsort orders the ties, over the flags concatenated in the
    # order the ground truth names the images (not the order of the prediction dict)
    scores = np.tile([0.5, 0.5, 0.7], 14)[:40]
    gt = {f"i{k}": G for k in range(20)}
    dets = {f"i{k}": [[0, 0, 9, 9, scores[2 * k]], [50, 50, 60, 60, scores[2 * k + 1]]] for k in reversed(range(20))}
    r = _eval(gt, dets)
    flags = np.array([True, False] * 20)

    def ap(order: np.ndarray) -> float:
        tp = np.cumsum(flags[order])
        return voc_ap(tp / 20, tp / np.arange(1, 41))

    assert r.ap == ap(np.argsort(-scores))
    assert r.curve_scores.tolist() == scores[np.argsort(-scores)].tolist()
    # (with numpy 2.4 on x86-64 the stable order gives another AP: the tie order matters)


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


def _devkit_reference(gt: dict, dets: list[tuple[str, float, np.ndarray]], thr: float = 0.5, file_order: bool = False) -> float:
    """The VOC devkit's voc_eval loop, written out plainly (``file_order``: matched in the
    order given, then ranked by score, which without ties is the same ranking)."""
    npos = sum(len(v) for v in gt.values())
    dets = [d for d in dets if d[0] in gt]
    order = sorted(range(len(dets)), key=lambda i: (-dets[i][1], i))
    used = {k: [False] * len(v) for k, v in gt.items()}
    tp, fp = [0] * len(dets), [0] * len(dets)
    for i in range(len(dets)) if file_order else order:
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
            tp[i] = 1
        else:
            fp[i] = 1
    ctp, cfp = np.cumsum([tp[i] for i in order]), np.cumsum([fp[i] for i in order])
    rec, prec = ctp / npos, ctp / np.maximum(ctp + cfp, 1e-12)
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return float(sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i]))


@pytest.mark.parametrize("seed", range(5))
def test_matches_devkit_reference_on_random_data(seed: int) -> None:
    """The classic devkit (score-order matching) agrees where its rules and the official
    ones coincide: each image's detections best first, no tied scores."""
    rng = np.random.default_rng(seed)
    distinct = iter(rng.permutation(1000) / 1000 + 0.0005)
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
        s = np.sort([next(distinct) for _ in range(n)])[::-1]
        pred_boxes[name], pred_scores[name] = d, s
        flat += [(name, float(s[j]), d[j]) for j in range(n)]
    pred_boxes["stray.jpg"], pred_scores["stray.jpg"] = np.array([[0, 0, 5, 5.0]]), np.array([0.99])
    flat.append(("stray.jpg", 0.99, np.array([0, 0, 5, 5.0])))
    r = evaluate(gt, pred_boxes, pred_scores)
    assert r.ap == pytest.approx(_devkit_reference(gt, flat), abs=1e-12)
    shuffled = {k: rng.permutation(len(v)) for k, v in pred_boxes.items()}  # file order is what counts now
    r = evaluate(gt, {k: v[shuffled[k]] for k, v in pred_boxes.items()}, {k: v[shuffled[k]] for k, v in pred_scores.items()})
    flat = [(name, float(pred_scores[name][j]), pred_boxes[name][j]) for name in pred_boxes for j in shuffled[name]]
    assert r.ap == pytest.approx(_devkit_reference(gt, flat, file_order=True), abs=1e-12)
