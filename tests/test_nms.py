"""Vectorized batched NMS against a plain greedy loop, and torch == numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acfd_deploy.pipeline.nms import batched_box_iou, batched_nms


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes: np.ndarray, scores: np.ndarray, thr: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Textbook greedy NMS on one image: the brute-force reference."""
    idx = [i for i in range(len(scores)) if valid is None or valid[i]]
    idx.sort(key=lambda i: (-scores[i], i))
    keep = np.zeros(len(scores), dtype=bool)
    kept: list[int] = []
    for i in idx:
        if all(_iou(boxes[i], boxes[j]) <= thr for j in kept):
            kept.append(i)
            keep[i] = True
    return keep


def _clustered(rng: np.random.Generator, b: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.uniform(0, 200, size=(b, 5, 2))
    pick = rng.integers(0, 5, size=(b, k))
    c = np.take_along_axis(centres, pick[..., None], axis=1) + rng.normal(0, 6, size=(b, k, 2))
    wh = rng.uniform(10, 40, size=(b, k, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=-1).astype(np.float32)
    scores = np.round(rng.random((b, k)), 2).astype(np.float32)  # ties on purpose
    return boxes, scores


@pytest.mark.parametrize("thr", [0.3, 0.55, 0.8])
@pytest.mark.parametrize("seed", range(3))
def test_matches_reference(seed: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = _clustered(rng, 3, 120)
    valid = rng.random((3, 120)) > 0.2
    keep = batched_nms(boxes, scores, thr, valid)
    for i in range(3):
        assert np.array_equal(keep[i], reference_nms(boxes[i], scores[i], thr, valid[i]))
    assert keep.sum() < valid.sum()  # the case actually suppresses something


def test_torch_and_numpy_agree() -> None:
    boxes, scores = _clustered(np.random.default_rng(7), 4, 300)
    k_np = batched_nms(boxes, scores, 0.55)
    k_t = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.55)
    assert isinstance(k_np, np.ndarray) and isinstance(k_t, torch.Tensor)
    assert np.array_equal(k_np, k_t.numpy())


def test_suppression_chain_is_exact_not_fast_nms() -> None:
    # each box overlaps its neighbour (IoU 0.67) but not the one after (IoU 0.33): greedy
    # keeps 0, 2, 4, ...; "fast NMS" (suppress by any higher box, kept or not) keeps only 0
    n = 21
    x = np.arange(n, dtype=np.float32) * 2.0
    boxes = np.stack([x, np.zeros(n), x + 10, np.full(n, 10.0)], axis=1)[None].astype(np.float32)
    scores = np.linspace(1.0, 0.5, n, dtype=np.float32)[None]
    keep = batched_nms(boxes, scores, 0.55)[0]
    assert np.array_equal(keep, reference_nms(boxes[0], scores[0], 0.55))
    assert keep.tolist() == [i % 2 == 0 for i in range(n)]


def test_invalid_entries_never_kept_nor_suppress() -> None:
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11]]], dtype=np.float32)
    scores = np.array([[0.99, 0.5, 0.4]], dtype=np.float32)
    valid = np.array([[False, True, True]])
    keep = batched_nms(boxes, scores, 0.5, valid)
    assert keep.tolist() == [[False, True, False]]


def test_ties_keep_input_order_and_degenerate_boxes() -> None:
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 5], [5, 5, 5, 5]]], dtype=np.float32)
    scores = np.array([[0.7, 0.7, 0.9, 0.9]], dtype=np.float32)
    keep = batched_nms(boxes, scores, 0.5)
    # zero-area boxes have IoU 0 with everything (no division by zero), so both stay
    assert keep.tolist() == [[True, False, True, True]]


def test_empty_inputs() -> None:
    assert batched_nms(np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.float32), 0.5).shape == (2, 0)
    assert batched_nms(np.zeros((0, 5, 4), np.float32), np.zeros((0, 5), np.float32), 0.5).shape == (0, 5)
    none_valid = batched_nms(np.zeros((1, 3, 4), np.float32), np.ones((1, 3), np.float32), 0.5, np.zeros((1, 3), bool))
    assert not none_valid.any()


def test_batched_iou_matches_pairwise() -> None:
    boxes, _ = _clustered(np.random.default_rng(3), 2, 20)
    iou = batched_box_iou(torch.from_numpy(boxes)).numpy()
    for b in range(2):
        for i in range(0, 20, 3):
            for j in range(0, 20, 4):
                assert iou[b, i, j] == pytest.approx(_iou(boxes[b, i], boxes[b, j]), abs=1e-6)


def test_large_candidate_set_is_chunked_and_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    import acfd_deploy.pipeline.nms as nms

    monkeypatch.setattr(nms, "_CHUNK_ELEMENTS", 1000)  # forces one image per chunk
    boxes, scores = _clustered(np.random.default_rng(11), 3, 60)
    keep = nms.batched_nms(boxes, scores, 0.55)
    for i in range(3):
        assert np.array_equal(keep[i], reference_nms(boxes[i], scores[i], 0.55))


@pytest.mark.parametrize(("spread", "max_keep"), [(2.0, 150), (30.0, 30)])
def test_max_keep_gives_the_same_best_survivors(spread: float, max_keep: int) -> None:
    # heavy suppression (spread 2: about 110 of the first 256 survive) makes the prefix grow
    rng = np.random.default_rng(5)
    centres = rng.uniform(0, 600, size=(2, 40, 2))
    c = np.take_along_axis(centres, rng.integers(0, 40, size=(2, 1500))[..., None], axis=1) + rng.normal(0, spread, size=(2, 1500, 2))
    wh = rng.uniform(20, 60, size=(2, 1500, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=-1).astype(np.float32)
    scores = rng.random((2, 1500)).astype(np.float32)
    full = batched_nms(boxes, scores, 0.55)
    capped = batched_nms(boxes, scores, 0.55, max_keep=max_keep)
    for i in range(2):
        order = np.argsort(-scores[i], kind="stable")
        best_full = [j for j in order if full[i, j]][:max_keep]
        best_capped = [j for j in order if capped[i, j]][:max_keep]
        assert best_full == best_capped and len(best_full) == max_keep
        assert capped[i].sum() <= full[i].sum()
