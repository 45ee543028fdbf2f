"""The comparisons behind every verdict (acfd_deploy.verify.compare) as pure functions on
made-up outputs."""

from __future__ import annotations

import numpy as np
import pytest

from acfd_deploy.verify import compare as parity
from acfd_deploy.verify.rules import FP32_TOL


def _outputs(b: int = 2, n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, size=(b, n, 2))
    wh = rng.uniform(10, 200, size=(b, n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)
    scores = rng.uniform(0, 1, size=(b, n)).astype(np.float32)
    return boxes, scores


def test_tensor_diff_identical_and_perturbed() -> None:
    ref = _outputs()
    assert parity.tensor_diff(ref, ref) == parity.TensorDiff(0.0, 0.0, anchors=2 * 50)
    boxes, scores = ref[0].copy(), ref[1].copy()
    scores[1, 7] += 3e-4
    boxes[0, 3, 3] = boxes[0, 3, 3] + 2e-4 * np.abs(boxes[0, 3]).max()
    diff = parity.tensor_diff(ref, (boxes, scores))
    assert diff.score_abs == pytest.approx(3e-4, rel=1e-2)
    assert diff.box_rel == pytest.approx(2e-4, rel=1e-2)
    assert diff.anchors == 100
    assert not diff.ok(FP32_TOL, FP32_TOL)
    assert not diff.ok(1e-3, FP32_TOL)  # the box error alone fails it
    assert diff.ok(1e-3, 1e-3)


def test_tensor_diff_box_error_is_relative_to_the_box_not_the_coordinate() -> None:
    # a 179-pixel box whose x1 lands near 0: rounding there follows the box's size
    ref = (np.array([[[-1.05, 10.0, 178.0, 230.0]]], np.float32), np.zeros((1, 1), np.float32))
    cand = (ref[0] + np.array([3e-4, 0, 0, 0], np.float32), ref[1])
    assert parity.tensor_diff(ref, cand).box_rel == pytest.approx(3e-4 / 230.0, rel=1e-2)
    far = (ref[0] + np.array([0, 0, 0, 0.1], np.float32), ref[1])  # 0.1 px on a 230 px box
    assert parity.tensor_diff(ref, far).box_rel == pytest.approx(0.1 / 230.0, rel=1e-2)
    assert not parity.tensor_diff(ref, far).ok(FP32_TOL, FP32_TOL)


def test_tensor_diff_box_error_is_absolute_near_zero() -> None:
    boxes = np.zeros((1, 1, 4), np.float32)
    ref = (boxes, np.zeros((1, 1), np.float32))
    cand = (boxes + 5e-5, np.zeros((1, 1), np.float32))
    assert parity.tensor_diff(ref, cand).box_rel == pytest.approx(5e-5, rel=1e-3)


def test_nan_never_passes() -> None:
    ref = _outputs()
    scores = ref[1].copy()
    scores[0, 0] = np.nan
    diff = parity.tensor_diff(ref, (ref[0], scores))
    assert not diff.ok(1.0, 1.0) and diff.anchors == scores.size
    match = parity.detection_match(ref, (ref[0], scores), score_threshold=0.0)
    assert match.matched == match.reference - 1


def test_shape_mismatch_is_an_error() -> None:
    ref = _outputs(n=50)
    with pytest.raises(ValueError, match="shapes differ"):
        parity.tensor_diff(ref, _outputs(n=49))


def test_detection_match_counts_each_failure_kind() -> None:
    boxes, scores = _outputs(b=1, n=6)
    scores[:] = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1]  # four reference detections (>= 0.3)
    cand_boxes, cand_scores = boxes.copy(), scores.copy()
    cand_scores[0, 1] += 0.03  # score moved too far
    w = cand_boxes[0, 2, 2] - cand_boxes[0, 2, 0]
    cand_boxes[0, 2, [0, 2]] += 0.2 * w  # shifted by 20% of its width: IoU about 0.67
    cand_boxes[0, 3, 2] += 0.01  # a hair: still IoU > 0.99
    cand_scores[0, 4] = 0.95  # below threshold in the reference: not counted
    match = parity.detection_match((boxes, scores), (cand_boxes, cand_scores))
    assert (match.reference, match.matched, match.candidate) == (4, 2, 5)
    assert match.rate == 0.5
    assert match.max_score_diff == pytest.approx(0.03, abs=1e-6)
    assert 0.6 < match.mean_iou < 1.0


def test_detection_match_without_reference_detections_has_no_rate() -> None:
    boxes, scores = _outputs()
    scores[:] = 0.1
    match = parity.detection_match((boxes, scores), (boxes, scores))
    assert match.reference == 0 and match.rate is None  # a rate of nothing is not 100%
    assert match.to_dict()["rate"] is None
    assert parity.merge_matches([match, match]).rate is None


def test_paired_iou_degenerate_boxes() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 5, 5], [0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 5, 5, 5], [10, 10, 20, 20]], np.float32)
    np.testing.assert_allclose(parity.paired_iou(a, b), [1.0, 0.0, 0.0])


def test_merge_pools_counts() -> None:
    m1 = parity.DetectionMatch(10, 9, 10, 0.95, 0.01)
    m2 = parity.DetectionMatch(30, 30, 31, 0.99, 0.015)
    merged = parity.merge_matches([m1, m2])
    assert (merged.reference, merged.matched) == (40, 39)
    assert merged.mean_iou == pytest.approx((9.5 + 29.7) / 40)
    assert merged.max_score_diff == 0.015 and merged.rate == 39 / 40
    merged_diff = parity.merge_diffs([parity.TensorDiff(1e-5, 3e-5, 10), parity.TensorDiff(2e-5, 1e-6, 7)])
    assert merged_diff == parity.TensorDiff(2e-5, 3e-5, 17)  # the anchors compared add up
    assert parity.merge_diffs([]).anchors == 0
