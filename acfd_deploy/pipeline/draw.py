"""Annotated images: boxes and scores drawn on the picture."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX_COLOR = (255, 40, 40)
TEXT_COLOR = (255, 255, 255)


def draw_detections(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, conf: float = 0.0) -> Image.Image:
    """An RGB PIL image with every detection scoring ``>= conf`` outlined and labelled.

    Line width and label size follow the image size so a 4K frame and a thumbnail both
    stay readable.
    """
    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    side = max(img.size)
    width = max(2, side // 320)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=max(12, side // 45))
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    for box, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1)):
        if score < conf:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=BOX_COLOR, width=width)
        label = f"{score:.2f}"
        l, t, r, b = draw.textbbox((0, 0), label, font=font)
        tw, th = r - l, b - t
        ty = y1 - th - 2 * width if y1 - th - 2 * width >= 0 else y1
        draw.rectangle([x1, ty, x1 + tw + 2 * width, ty + th + 2 * width], fill=BOX_COLOR)
        draw.text((x1 + width - l, ty + width - t), label, fill=TEXT_COLOR, font=font)
    return img
