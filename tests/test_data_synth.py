"""The synthetic cartoon-face generator: deterministic, fast, tight boxes, the paper's mix."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from acfd_deploy.data import generate_sample, read_annotations, sample_rng, write_dataset
from acfd_deploy.data.synth import SynthConfig, _draw_face
from acfd_deploy.errors import AcfdError


def test_deterministic_for_a_seed() -> None:
    a_img, a_boxes = generate_sample(sample_rng(3, 7), 200, 240)
    b_img, b_boxes = generate_sample(sample_rng(3, 7), 200, 240)
    c_img, _ = generate_sample(sample_rng(4, 7), 200, 240)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_boxes, b_boxes)
    assert not np.array_equal(a_img, c_img)
    assert a_img.dtype == np.uint8 and a_img.shape == (200, 240, 3)


def test_statistics_follow_the_paper() -> None:
    ratios, sizes, counts = [], [], []
    for i in range(250):
        img, boxes = generate_sample(sample_rng(11, i), 640, 640)
        assert len(boxes) >= 1
        assert (boxes == np.round(boxes)).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 2] <= 639).all() and (boxes[:, 3] <= 639).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        ratios += list(w / h)
        sizes += list(np.sqrt(w * h))
        counts.append(len(boxes))
    ratios, sizes = np.array(ratios), np.array(sizes)
    extreme = np.mean((ratios > 2) | (ratios < 0.5))
    assert 0.05 < extreme < 0.18, extreme  # the paper: about 10%
    assert (ratios > 2).any() and (ratios < 0.5).any()
    assert sizes.min() >= 14 and sizes.max() <= 520
    assert (sizes < 32).mean() > 0.1 and (sizes > 256).mean() > 0.05  # the whole 16..512 range is used
    assert np.mean(counts) > 2 and max(counts) >= 6  # several faces per image


def test_fast_enough_for_training() -> None:
    rng = sample_rng(0, 0)
    generate_sample(rng, 640, 640)
    start = time.perf_counter()
    for i in range(10):
        generate_sample(sample_rng(0, i), 640, 640)
    assert (time.perf_counter() - start) / 10 < 0.1


@pytest.mark.parametrize("seed", range(6))
def test_box_is_tight_around_the_head(seed: int) -> None:
    rng = np.random.default_rng(seed)
    box = (40, 50, 40 + int(rng.integers(20, 120)), 50 + int(rng.integers(20, 120)))
    canvas = Image.new("RGB", (300, 300), (1, 2, 3))
    _draw_face(canvas, ImageDraw.Draw(canvas), rng, box, SynthConfig())
    drawn = (np.asarray(canvas) != (1, 2, 3)).any(axis=-1)
    x1, y1, x2, y2 = box
    # the head shape reaches every side of the box ...
    assert drawn[y1 : y2 + 1, x1].any() and drawn[y1 : y2 + 1, x2].any()
    assert drawn[y1, x1 : x2 + 1].any() and drawn[y2, x1 : x2 + 1].any()
    # ... and the middle of the box is the face, not background
    assert drawn[(y1 + y2) // 2, x1 + (x2 - x1) // 4 : x2 - (x2 - x1) // 4].all()


def test_write_dataset(tmp_path: Path) -> None:
    csv_path = write_dataset(tmp_path / "ds", num=3, seed=5, size=(96, 128))
    ann = read_annotations(csv_path)
    assert ann.kind == "val" and not ann.issues
    files = sorted(p.name for p in (tmp_path / "ds" / "images").iterdir())
    assert files == sorted(ann.boxes) and len(files) == 3
    with Image.open(tmp_path / "ds" / "images" / files[0]) as img:
        assert img.size == (128, 96) and img.format == "JPEG"
    # image i does not depend on how many images are made
    more = write_dataset(tmp_path / "ds5", num=5, seed=5, size=(96, 128))
    assert np.array_equal(read_annotations(more).boxes[files[1]], ann.boxes[files[1]])
    train = read_annotations(write_dataset(tmp_path / "tr", num=1, seed=0, size=(64, 64), kind="train"))
    assert train.kind == "train"


def test_rejects_tiny_or_empty_requests(tmp_path: Path) -> None:
    with pytest.raises(AcfdError):
        generate_sample(sample_rng(0, 0), 16, 100)
    with pytest.raises(AcfdError):
        write_dataset(tmp_path, num=0)
