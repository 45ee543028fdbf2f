"""Synthetic cartoon faces: the project's own test, demo and training data.

iCartoonFace cannot be downloaded here, so we draw faces with the traits the paper calls
hard: any skin hue, outlines or none, many eye, mouth and hair styles, accessories,
sizes 16..512 px (the anchor range), about 10% with aspect ratio > 2 or < 0.5, partial
occlusion, blur, cluttered backgrounds and face-like distractors (round objects, headless
bodies). Everything is a function of a ``numpy.random.Generator``: the same seed gives
the same pixels. Drawing uses PIL's C primitives, so a 640x640 image takes milliseconds.

Box convention: inclusive integer pixels ``x1..x2`` (the challenge's +1 rule), tight
around the head shape; hair, ears and hats that stick out are not part of the box.
"""

from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from acfd_deploy.data.icartoon import write_annotations
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path

Color = tuple[int, int, int]


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; the defaults follow the paper's statistics."""

    min_face: float = 16.0  # sqrt(w * h) of a face, pixels
    max_face: float = 512.0
    extreme_aspect_fraction: float = 0.10  # share of faces with w/h > 2 or < 0.5
    max_faces: int = 8
    occlusion_prob: float = 0.15
    blur_prob: float = 0.15
    body_prob: float = 0.35
    distractors: tuple[int, int] = (1, 6)
    clutter: tuple[int, int] = (4, 30)
    max_face_overlap: float = 0.3  # intersection over the smaller face's box


def _color(rng: np.random.Generator, sat: tuple[float, float] = (0.2, 1.0), val: tuple[float, float] = (0.3, 1.0)) -> Color:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return int(r * 255), int(g * 255), int(b * 255)


def _darker(c: Color, f: float = 0.55) -> Color:
    return int(c[0] * f), int(c[1] * f), int(c[2] * f)


def _background(rng: np.random.Generator, height: int, width: int, cfg: SynthConfig) -> Image.Image:
    """Smooth colour fields at a random coarseness, then clutter shapes on top."""
    cells = int(rng.integers(2, 10))
    coarse = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(*cfg.clutter))):
        c = _color(rng)
        x, y = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.02, 0.5) * width, rng.uniform(0.02, 0.5) * height
        kind = rng.integers(0, 5)
        if kind == 0:
            draw.rectangle([x, y, x + w, y + h], fill=c)
        elif kind == 1:
            pts = [(x + rng.uniform(0, w), y + rng.uniform(0, h)) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(pts, fill=c)
        elif kind == 2:
            draw.line([(x, y), (x + w, y + h)], fill=c, width=int(rng.integers(1, 8)))
        elif kind == 3:
            for i in range(int(rng.integers(2, 8))):  # stripes
                yy = y + i * h / 8
                draw.rectangle([x, yy, x + w, yy + h / 16], fill=c)
        else:
            draw.rounded_rectangle([x, y, x + w, y + h], radius=min(w, h) / 4, fill=c, outline=_darker(c), width=2)
    return image


def _face_size(rng: np.random.Generator, height: int, width: int, cfg: SynthConfig) -> tuple[int, int]:
    """(w, h) with sqrt(w*h) log-uniform in [min_face, max_face] and the aspect mix."""
    top = min(cfg.max_face, 0.9 * min(height, width))
    size = math.exp(rng.uniform(math.log(cfg.min_face), math.log(max(top, cfg.min_face))))
    if rng.random() < cfg.extreme_aspect_fraction:
        ratio = math.exp(rng.uniform(math.log(2.1), math.log(3.5)))
        ratio = ratio if rng.random() < 0.5 else 1 / ratio
    else:
        ratio = math.exp(rng.uniform(math.log(0.62), math.log(1.6)))
    w = size * math.sqrt(ratio)
    h = size / math.sqrt(ratio)
    # fit the image, keeping the ratio (an extreme face must stay extreme)
    shrink = min(1.0, (width - 2) / w, (height - 2) / h)
    return max(4, int(round(w * shrink))), max(4, int(round(h * shrink)))


def _overlap(a: tuple[int, int, int, int], b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area: catches a small face inside a big one,
    which IoU would let through."""
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]) + 1, 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]) + 1, 0, None)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return iw * ih / np.minimum(area_a, area_b)


def _draw_eyes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[float, float, float, float], line: int) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    s = min(w, h)
    ey = y1 + h * rng.uniform(0.35, 0.5)
    dx = w * rng.uniform(0.17, 0.26)
    cx = (x1 + x2) / 2 + w * rng.uniform(-0.06, 0.06)
    r = s * rng.uniform(0.06, 0.16)
    ry = r * rng.uniform(0.8, 1.8)
    style = int(rng.integers(0, 5))
    iris = _color(rng, val=(0.2, 0.8))
    for ex in (cx - dx, cx + dx):
        if style == 0:  # dots
            draw.ellipse([ex - r * 0.5, ey - r * 0.5, ex + r * 0.5, ey + r * 0.5], fill=(0, 0, 0))
        elif style == 1:  # white eye with pupil
            draw.ellipse([ex - r, ey - ry, ex + r, ey + ry], fill=(255, 255, 255), outline=(0, 0, 0), width=line)
            draw.ellipse([ex - r * 0.45, ey - r * 0.2, ex + r * 0.45, ey + r * 0.7], fill=(0, 0, 0))
        elif style == 2:  # anime: big iris, highlight
            draw.ellipse([ex - r, ey - ry * 1.2, ex + r, ey + ry], fill=iris, outline=(0, 0, 0), width=line)
            draw.ellipse([ex - r * 0.35, ey - ry * 0.8, ex + r * 0.05, ey - ry * 0.3], fill=(255, 255, 255))
            draw.line([(ex - r * 1.2, ey - ry * 1.3), (ex + r * 1.2, ey - ry * 1.2)], fill=(0, 0, 0), width=max(1, line + 1))
        elif style == 3:  # closed / happy arcs
            draw.arc([ex - r, ey - r, ex + r, ey + r], 200, 340, fill=(0, 0, 0), width=max(1, line))
        else:  # lines
            draw.line([(ex - r, ey), (ex + r, ey)], fill=(0, 0, 0), width=max(1, line))
    if rng.random() < 0.3:  # brows
        for ex in (cx - dx, cx + dx):
            draw.line([(ex - r, ey - ry * 1.8), (ex + r, ey - ry * 1.6 - r * rng.uniform(-0.4, 0.4))], fill=(0, 0, 0), width=max(1, line))


def _draw_mouth(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[float, float, float, float], line: int) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    cx = (x1 + x2) / 2 + w * rng.uniform(-0.05, 0.05)
    my = y1 + h * rng.uniform(0.68, 0.82)
    mw = w * rng.uniform(0.08, 0.25)
    mh = h * rng.uniform(0.03, 0.12)
    style = int(rng.integers(0, 4))
    if style == 0:
        draw.arc([cx - mw, my - mh * 2, cx + mw, my + mh], 20, 160, fill=(0, 0, 0), width=max(1, line))
    elif style == 1:
        draw.chord([cx - mw, my - mh, cx + mw, my + mh * 1.5], 0, 180, fill=(120, 20, 30), outline=(0, 0, 0), width=max(1, line // 2))
    elif style == 2:
        draw.ellipse([cx - mw * 0.4, my - mh, cx + mw * 0.4, my + mh], fill=(150, 30, 40), outline=(0, 0, 0))
    else:
        draw.line([(cx - mw, my), (cx + mw, my + mh * rng.uniform(-0.5, 0.5))], fill=(0, 0, 0), width=max(1, line))
    if rng.random() < 0.4:  # nose
        ny = y1 + h * rng.uniform(0.55, 0.65)
        draw.line([(cx, ny - h * 0.04), (cx - w * 0.02, ny)], fill=_darker((0, 0, 0)), width=max(1, line // 2))


def _draw_hair(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[int, int, int, int], line: int) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    hair = _color(rng, sat=(0.0, 1.0), val=(0.05, 1.0))
    style = int(rng.integers(0, 4))
    if style == 0:  # cap of hair inside the top of the head
        draw.chord([x1, y1, x2, y1 + h * rng.uniform(0.5, 0.8)], 180, 360, fill=hair)
    elif style == 1:  # spikes poking out above
        n = int(rng.integers(3, 8))
        pts = [(x1 + w * 0.05, y1 + h * 0.3)]
        for i in range(n):
            px = x1 + w * (0.05 + 0.9 * (i + 0.5) / n)
            pts.append((px, y1 - h * rng.uniform(0.05, 0.3)))
            pts.append((x1 + w * (0.05 + 0.9 * (i + 1) / n), y1 + h * rng.uniform(0.1, 0.25)))
        pts.append((x2 - w * 0.05, y1 + h * 0.3))
        draw.polygon(pts, fill=hair, outline=(0, 0, 0) if line else None)
    elif style == 2:  # bangs: a fringe of small chords
        n = int(rng.integers(2, 6))
        for i in range(n):
            bx = x1 + w * i / n
            draw.chord([bx, y1, bx + w / n, y1 + h * rng.uniform(0.2, 0.4)], 0, 360, fill=hair)
        draw.chord([x1, y1, x2, y1 + h * 0.4], 180, 360, fill=hair)
    # style 3: bald


def _draw_accessory(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[int, int, int, int], line: int) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    kind = int(rng.integers(0, 4))
    c = _color(rng)
    if kind == 0:  # glasses
        ey = y1 + h * 0.45
        r = min(w, h) * 0.13
        for ex in (x1 + w * 0.32, x1 + w * 0.68):
            draw.ellipse([ex - r, ey - r, ex + r, ey + r], outline=c, width=max(1, line + 1))
        draw.line([(x1 + w * 0.32 + r, ey), (x1 + w * 0.68 - r, ey)], fill=c, width=max(1, line))
    elif kind == 1:  # hat above the head
        draw.rectangle([x1 + w * 0.15, y1 - h * 0.35, x2 - w * 0.15, y1 + h * 0.1], fill=c, outline=_darker(c))
        draw.rectangle([x1 - w * 0.05, y1 + h * 0.05, x2 + w * 0.05, y1 + h * 0.12], fill=_darker(c, 0.8))
    elif kind == 2:  # blush
        for ex in (x1 + w * 0.25, x1 + w * 0.75):
            draw.ellipse([ex - w * 0.08, y1 + h * 0.58, ex + w * 0.08, y1 + h * 0.66], fill=(240, 140, 160))
    else:  # bow
        bx, by = x1 + w * rng.uniform(0.2, 0.8), y1 + h * 0.05
        s = min(w, h) * 0.15
        draw.polygon([(bx, by), (bx - s, by - s * 0.7), (bx - s, by + s * 0.7)], fill=c)
        draw.polygon([(bx, by), (bx + s, by - s * 0.7), (bx + s, by + s * 0.7)], fill=c)


def _draw_body(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, head: tuple[int, int, int, int] | None, x: float, y: float, w: float, h: float
) -> None:
    """A torso with arms; ``head`` set means it hangs below that head."""
    c = _color(rng)
    if head is not None:
        hx1, _, hx2, hy2 = head
        cx, top = (hx1 + hx2) / 2, float(hy2 - 1)
        w = (hx2 - hx1) * rng.uniform(0.9, 1.6)
        h = (hx2 - hx1) * rng.uniform(1.0, 2.0)
    else:
        cx, top = x + w / 2, y
    draw.polygon([(cx - w * 0.3, top), (cx + w * 0.3, top), (cx + w / 2, top + h), (cx - w / 2, top + h)], fill=c, outline=_darker(c))
    arm = _darker(c, 0.8)
    draw.line([(cx - w * 0.3, top + h * 0.1), (cx - w * 0.7, top + h * 0.6)], fill=arm, width=max(2, int(w * 0.08)))
    draw.line([(cx + w * 0.3, top + h * 0.1), (cx + w * 0.7, top + h * 0.6)], fill=arm, width=max(2, int(w * 0.08)))


def _draw_distractor(draw: ImageDraw.ImageDraw, rng: np.random.Generator, height: int, width: int, cfg: SynthConfig) -> None:
    """Things a face detector must learn to reject: round objects, headless bodies."""
    size = math.exp(rng.uniform(math.log(cfg.min_face), math.log(max(cfg.min_face, min(cfg.max_face, 0.8 * min(height, width))))))
    x, y = rng.uniform(0, width - size / 2), rng.uniform(0, height - size / 2)
    kind = int(rng.integers(0, 4))
    c = _color(rng)
    if kind == 0:  # ball with stripes
        draw.ellipse([x, y, x + size, y + size], fill=c, outline=(0, 0, 0), width=max(1, int(size / 40)))
        draw.arc([x, y + size * 0.2, x + size, y + size * 0.8], 0, 180, fill=_darker(c), width=max(1, int(size / 20)))
    elif kind == 1:  # wheel / ring
        draw.ellipse([x, y, x + size, y + size], outline=c, width=max(2, int(size / 8)))
        draw.ellipse([x + size * 0.45, y + size * 0.45, x + size * 0.55, y + size * 0.55], fill=_darker(c))
    elif kind == 2:  # headless body
        _draw_body(draw, rng, None, x, y, size * 0.8, size * 1.2)
    else:  # fruit-like: disc with a single leaf
        draw.ellipse([x, y, x + size, y + size * rng.uniform(0.8, 1.2)], fill=c)
        draw.polygon([(x + size / 2, y), (x + size * 0.7, y - size * 0.2), (x + size * 0.6, y + size * 0.05)], fill=(40, 160, 60))


def _draw_face(
    image: Image.Image, draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[int, int, int, int], cfg: SynthConfig
) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    skin = _color(rng, sat=(0.05, 0.9), val=(0.4, 1.0))
    has_outline = rng.random() < 0.65
    line = max(1, int(round(min(w, h) * rng.uniform(0.015, 0.05))))
    outline = (0, 0, 0) if has_outline else None
    if rng.random() < 0.35:  # ears / animal ears, outside the box on purpose
        er = min(w, h) * rng.uniform(0.12, 0.25)
        if rng.random() < 0.5:
            for ex in (x1, x2):
                draw.ellipse([ex - er, (y1 + y2) / 2 - er, ex + er, (y1 + y2) / 2 + er], fill=skin, outline=outline, width=line)
        else:
            for ear_x in (x1 + w * 0.2, x2 - w * 0.2):
                draw.polygon([(ear_x - er, y1 + h * 0.15), (ear_x, y1 - er * 1.2), (ear_x + er, y1 + h * 0.15)], fill=skin, outline=outline)
    if rng.random() < 0.75:
        draw.ellipse([x1, y1, x2, y2], fill=skin, outline=outline, width=line if has_outline else 0)
    else:
        draw.rounded_rectangle(
            [x1, y1, x2, y2], radius=min(w, h) * rng.uniform(0.15, 0.45), fill=skin, outline=outline, width=line if has_outline else 0
        )
    fbox = (float(x1), float(y1), float(x2), float(y2))
    _draw_hair(draw, rng, box, line if has_outline else 0)
    _draw_eyes(draw, rng, fbox, line)
    _draw_mouth(draw, rng, fbox, line)
    if rng.random() < 0.3:
        _draw_accessory(draw, rng, box, line)


def _occlude(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[int, int, int, int]) -> None:
    """Cover at most ~40% of the face with an object in front of it."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    c = _color(rng)
    frac = rng.uniform(0.15, 0.4)
    side = int(rng.integers(0, 4))
    if side == 0:
        rect = [x1 - w * 0.1, y2 - h * frac, x2 + w * 0.1, y2 + h * 0.2]
    elif side == 1:
        rect = [x1 - w * 0.2, y1 - h * 0.1, x1 + w * frac, y2 + h * 0.1]
    elif side == 2:
        rect = [x2 - w * frac, y1 - h * 0.1, x2 + w * 0.2, y2 + h * 0.1]
    else:
        rect = [x1 - w * 0.1, y1 - h * 0.1, x2 + w * 0.1, y1 + h * frac * 0.8]
    if rng.random() < 0.5:
        draw.rectangle(rect, fill=c, outline=_darker(c))
    else:
        draw.rounded_rectangle(rect, radius=min(w, h) * 0.1, fill=c)


def generate_sample(
    rng: np.random.Generator, height: int = 640, width: int = 640, config: SynthConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One image ``uint8 [H, W, 3]`` RGB and its face boxes ``float64 [K, 4]`` (K >= 1).

    Boxes are inclusive integer pixels, tight around the head shape, inside the image.
    """
    cfg = config or SynthConfig()
    if height < 32 or width < 32:
        raise AcfdError(f"synthetic images must be at least 32x32, got {height}x{width}")
    image = _background(rng, height, width, cfg)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(*cfg.distractors))):
        _draw_distractor(draw, rng, height, width, cfg)
    wanted = int(rng.integers(1, cfg.max_faces + 1))
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(wanted * 6):
        if len(placed) >= wanted:
            break
        w, h = _face_size(rng, height, width, cfg)
        x1 = int(rng.integers(0, width - w + 1))
        y1 = int(rng.integers(0, height - h + 1))
        box = (x1, y1, x1 + w - 1, y1 + h - 1)
        if placed and _overlap(box, np.asarray(placed)).max() > cfg.max_face_overlap:
            continue
        placed.append(box)
    if not placed:  # the overlap rule never refuses the first face; this is for safety
        w, h = _face_size(rng, height, width, cfg)
        placed.append((0, 0, w - 1, h - 1))
    # bodies first and the largest faces first: a later, smaller face may cover part of a
    # bigger one (at most max_face_overlap of the smaller), never the other way round
    placed.sort(key=lambda b: -(b[2] - b[0] + 1) * (b[3] - b[1] + 1))
    for box in placed:
        if rng.random() < cfg.body_prob:
            _draw_body(draw, rng, box, 0, 0, 0, 0)
    for box in placed:
        _draw_face(image, draw, rng, box, cfg)
        if rng.random() < cfg.occlusion_prob:
            _occlude(draw, rng, box)
        if rng.random() < cfg.blur_prob:
            pad = 4
            region = (max(0, box[0] - pad), max(0, box[1] - pad), min(width, box[2] + pad + 1), min(height, box[3] + pad + 1))
            radius = rng.uniform(0.8, 1.5) * max(1.0, min(box[2] - box[0], box[3] - box[1]) / 40)
            image.paste(image.crop(region).filter(ImageFilter.GaussianBlur(radius)), region[:2])
    boxes = np.asarray(placed, dtype=np.float64).reshape(-1, 4)
    return np.asarray(image, dtype=np.uint8), boxes.astype(np.float64)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of how many images are made."""
    return np.random.default_rng([int(seed), int(index)])


def synthetic_batch(batch: int, height: int, width: int, seed: int = 0, first: int = 0) -> np.ndarray:
    """Images ``first .. first + batch - 1`` of ``seed`` as the network takes them:
    float32 NCHW RGB 0..255 (parity and latency inputs that look like the real task)."""
    images = [generate_sample(sample_rng(seed, first + i), height, width)[0] for i in range(batch)]
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32)


def write_dataset(
    out_dir: str | os.PathLike[str],
    num: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 640),
    kind: str = "val",
    progress: bool = False,
    config: SynthConfig | None = None,
) -> Path:
    """Write ``num`` JPEGs under ``out_dir/images`` and ``out_dir/gt.csv``; return the CSV path.

    The CSV is iCartoonFace's validation format (6 columns) or, with ``kind="train"``,
    its training format (5 columns); image names are file names relative to ``images/``.
    """
    if num < 1:
        raise AcfdError(f"--num must be at least 1, got {num}")
    height, width = size
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, np.ndarray] = {}
    indices = range(num)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="img", disable=None)
    for i in indices:
        pixels, boxes = generate_sample(sample_rng(seed, i), height, width, config)
        name = f"synth_{seed}_{i:06d}.jpg"
        with atomic_path(images_dir / name) as tmp:
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)
        rows[name] = boxes
    return write_annotations(out / "gt.csv", rows, kind=kind)
