"""Training augmentation of the paper's Sec. 4.1, each step a function of
``(image uint8 [H, W, 3], boxes float [K, 4] xyxy, rng) -> (image, boxes)``.

(1) colour distortion; (2) expansion by a random factor in [1, 4] on a mean-coloured
canvas, which makes faces small; (3) a random crop, which makes faces big; (4) scaling a
random face toward one of the anchor sizes (PyramidBox's data-anchor-sampling); then a
horizontal flip and the resize to the training size. Boxes move with the pixels; a face
whose centre leaves the crop is dropped, others are clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

Sample = tuple[np.ndarray, np.ndarray]
MEAN_RGB = (124, 116, 104)


@dataclass(frozen=True)
class AugmentConfig:
    size: tuple[int, int] = (640, 640)
    expand_prob: float = 0.5
    max_expand: float = 4.0
    crop_prob: float = 0.8
    min_crop: float = 0.3
    anchor_sampling_prob: float = 0.5
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    flip_prob: float = 0.5
    min_face: float = 2.0


def color_distort(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> Sample:
    """Brightness, contrast, saturation and hue jitter, each with probability 1/2."""
    img = Image.fromarray(image)
    for kind in rng.permutation(4):
        if rng.random() >= 0.5:
            continue
        if kind == 0:
            img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
        elif kind == 1:
            img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
        elif kind == 2:
            img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
        else:
            hsv = np.asarray(img.convert("HSV")).copy()
            hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(-18, 19))) % 256
            img = Image.fromarray(hsv, "HSV").convert("RGB")
    return np.asarray(img), boxes


def expand(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, max_ratio: float = 4.0) -> Sample:
    h, w = image.shape[:2]
    ratio = rng.uniform(1.0, max_ratio)
    eh, ew = int(h * ratio), int(w * ratio)
    top, left = int(rng.integers(0, eh - h + 1)), int(rng.integers(0, ew - w + 1))
    canvas = np.empty((eh, ew, 3), dtype=np.uint8)
    canvas[:] = MEAN_RGB
    canvas[top : top + h, left : left + w] = image
    return canvas, boxes + np.array([left, top, left, top], dtype=boxes.dtype)


def crop(image: np.ndarray, boxes: np.ndarray, rect: tuple[int, int, int, int], min_face: float = 2.0) -> Sample:
    """Cut ``rect`` (x1, y1, x2, y2, exclusive end); keep faces whose centre is inside."""
    x1, y1, x2, y2 = rect
    out = image[y1:y2, x1:x2]
    if len(boxes) == 0:
        return out, boxes
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    keep = (centres[:, 0] >= x1) & (centres[:, 0] < x2) & (centres[:, 1] >= y1) & (centres[:, 1] < y2)
    moved = boxes[keep] - np.array([x1, y1, x1, y1], dtype=boxes.dtype)
    moved[:, [0, 2]] = moved[:, [0, 2]].clip(0, x2 - x1 - 1)
    moved[:, [1, 3]] = moved[:, [1, 3]].clip(0, y2 - y1 - 1)
    big_enough = ((moved[:, 2] - moved[:, 0]) >= min_face) & ((moved[:, 3] - moved[:, 1]) >= min_face)
    return out, moved[big_enough]


def random_crop(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, min_scale: float = 0.3, tries: int = 25) -> Sample:
    """A random window of 30-100% of each side that keeps at least one face whole-ish."""
    h, w = image.shape[:2]
    for _ in range(tries):
        ch, cw = int(h * rng.uniform(min_scale, 1.0)), int(w * rng.uniform(min_scale, 1.0))
        if ch < 8 or cw < 8 or not 0.5 <= ch / cw <= 2.0:
            continue
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out, kept = crop(image, boxes, (x, y, x + cw, y + ch))
        if len(boxes) == 0 or len(kept) > 0:
            return out, kept
    return image, boxes


def anchor_sampling(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, anchor_sizes: tuple[int, ...], out_size: int) -> Sample:
    """Rescale so a random face gets the size of a random anchor no bigger than the next
    one above the face (small faces get more samples), then cut an ``out_size`` window
    around that face. Assumes the image is later resized to ``out_size``."""
    if len(boxes) == 0:
        return image, boxes
    face = boxes[int(rng.integers(0, len(boxes)))]
    side = float(np.sqrt(max((face[2] - face[0]) * (face[3] - face[1]), 1.0)))
    nearest = int(np.argmin([abs(a - side) for a in anchor_sizes]))
    target = anchor_sizes[int(rng.integers(0, min(nearest + 2, len(anchor_sizes))))] * rng.uniform(0.7, 1.4)
    scale = target / side
    h, w = image.shape[:2]
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if max(nh, nw) > 4 * out_size + 4096:  # refuse absurd upscales of tiny faces
        return image, boxes
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    boxes = boxes * np.array([nw / w, nh / h, nw / w, nh / h])
    face = face * np.array([nw / w, nh / h, nw / w, nh / h])
    # a window containing the chosen face's centre, inside the image where possible
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    x = int(np.clip(cx - rng.uniform(0.1, 0.9) * out_size, 0, max(0, nw - out_size)))
    y = int(np.clip(cy - rng.uniform(0.1, 0.9) * out_size, 0, max(0, nh - out_size)))
    window = (x, y, min(nw, x + out_size), min(nh, y + out_size))
    return crop(resized, boxes, window)


def hflip(image: np.ndarray, boxes: np.ndarray) -> Sample:
    w = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = w - 1 - boxes[:, 2], w - 1 - boxes[:, 0]
    return image[:, ::-1], flipped


def resize(image: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> Sample:
    """To ``size`` (H, W) without keeping the aspect ratio, as the paper trains at 640x640."""
    h, w = image.shape[:2]
    th, tw = size
    out = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((tw, th), Image.Resampling.BILINEAR))
    return out, boxes * np.array([tw / w, th / h, tw / w, th / h])


def augment(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None) -> Sample:
    """The whole training augmentation; returns an image of ``config.size``."""
    cfg = config or AugmentConfig()
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    image, boxes = color_distort(image, boxes, rng)
    if rng.random() < cfg.anchor_sampling_prob:
        image, boxes = anchor_sampling(image, boxes, rng, cfg.anchor_sizes, max(cfg.size))
    else:
        if rng.random() < cfg.expand_prob:
            image, boxes = expand(image, boxes, rng, cfg.max_expand)
        if rng.random() < cfg.crop_prob:
            image, boxes = random_crop(image, boxes, rng, cfg.min_crop)
    if rng.random() < cfg.flip_prob:
        image, boxes = hflip(image, boxes)
    image, boxes = resize(image, boxes, cfg.size)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= cfg.min_face) & ((boxes[:, 3] - boxes[:, 1]) >= cfg.min_face)
    return np.ascontiguousarray(image), boxes[keep].astype(np.float32)
