"""Augmentations keep boxes on the faces: draw solid faces, transform, look inside boxes."""

from __future__ import annotations

import numpy as np
import pytest

from acfd_deploy.train.augment import AugmentConfig, anchor_sampling, augment, expand, hflip, random_crop, resize

FACE = np.array([255, 0, 255], dtype=np.uint8)  # magenta: nothing else in the scene has it


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image = (rng.random((300, 400, 3)) * 120).astype(np.uint8)
    boxes = np.array([[20, 30, 79, 109], [200, 150, 239, 169], [300, 20, 389, 49]], dtype=np.float64)  # incl. 2:1 and 3:1
    for x1, y1, x2, y2 in boxes.astype(int):
        image[y1 : y2 + 1, x1 : x2 + 1] = FACE
    return image, boxes


def _face_fraction(image: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = np.round(box).astype(int)
    inner = image[y1 + 1 : y2, x1 + 1 : x2]  # one pixel in: resampling blurs the border
    if inner.size == 0:
        return 1.0
    magenta = (inner[..., 0] > 180) & (inner[..., 1] < 90) & (inner[..., 2] > 180)
    return float(magenta.mean())


@pytest.mark.parametrize(
    "step",
    [
        lambda im, b, r: expand(im, b, r, 4.0),
        lambda im, b, r: random_crop(im, b, r),
        lambda im, b, r: anchor_sampling(im, b, r, (16, 32, 64, 128, 256, 512), 320),
        lambda im, b, r: hflip(im, b),
        lambda im, b, r: resize(im, b, (256, 320)),
    ],
    ids=["expand", "crop", "anchor-sampling", "flip", "resize"],
)
def test_geometric_steps_keep_boxes_on_faces(step) -> None:
    for seed in range(8):
        rng = np.random.default_rng(seed)
        image, boxes = _scene(rng)
        out, moved = step(image, boxes, rng)
        assert moved.shape[1] == 4
        for box in moved:
            assert _face_fraction(out, box) > 0.9, f"seed {seed}: box {box} is not on a face"


def test_full_augmentation_output_and_faces() -> None:
    cfg = AugmentConfig(size=(256, 320))
    kept = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        image, boxes = _scene(rng)
        out, moved = augment(image, boxes, rng, cfg)
        assert out.shape == (256, 320, 3) and out.dtype == np.uint8 and moved.dtype == np.float32
        assert (moved[:, 0] >= 0).all() and (moved[:, 2] <= 320).all() and (moved[:, 3] <= 256).all()
        kept += len(moved)
        for box in moved:
            # colour distortion changes magenta's shade: test the box centre's hue family only
            cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
            r, g, b = out[cy, cx].astype(int)
            assert r > g + 40 and b > g + 40, f"seed {seed}: centre of {box} is not on a face"
    assert kept >= 20, "augmentation must keep most faces"


def test_images_without_faces_pass_through() -> None:
    rng = np.random.default_rng(0)
    out, boxes = augment(np.zeros((100, 150, 3), np.uint8), np.zeros((0, 4)), rng, AugmentConfig(size=(128, 128)))
    assert out.shape == (128, 128, 3) and boxes.shape == (0, 4)
