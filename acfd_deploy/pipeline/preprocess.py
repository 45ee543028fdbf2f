"""Images to the network's input contract, and boxes back to image pixels.

Contract: float32 RGB ``[B, 3, H, W]``, values 0..255, each side at least the model's
minimum (125 px for six levels). Two resize policies, both giving one tensor size per
scale so a batch of images of different sizes is one tensor:

* ``stretch`` (default): resize to exactly ``H x W``; x and y get their own factor.
  Why the default: the paper trains on crops of random size resized to 640x640, which
  stretches every crop that is not square, so the network has learned stretched faces;
  its three test sizes share one ratio (1.344), which is not that of the 1920x1080
  challenge images, so they read as fixed tensor sizes; and fixed sizes are what the
  challenge's large-batch timing and the cost figures (about 720 GFLOP for the three
  scales) assume.
* ``letterbox``: keep the ratio, fit inside ``H x W`` with one factor, pad the bottom and
  right with the pixel mean (the value the network normalizes to zero), so boxes need no
  shift. Reach it with ``keep_ratio=True`` (``--keep-ratio``).

Padding up to the minimum side (both policies) also goes bottom/right with the mean.

The resize is Pillow's bilinear filter (antialiased when it shrinks), run as two explicit
passes, width first, each rounded to uint8: the algorithm of Pillow's ``Resample.c``, with
the pass order fixed (Pillow itself picks the order per call, which changes the rounding of
the intermediate image). Fixing it makes the resize a documented function of the image
alone, which the end-to-end ONNX graph (:mod:`acfd_deploy.export.e2e_pre`) computes
bit for bit in integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from acfd_deploy.runtime.base import DEFAULT_MIN_SIZE, DEFAULT_PIXEL_MEAN

__all__ = ["DEFAULT_MIN_SIZE", "DEFAULT_PIXEL_MEAN"]


@dataclass(frozen=True)
class Resized:
    """Where one image went: its original size and the factors from image to tensor."""

    orig_h: int
    orig_w: int
    scale_y: float
    scale_x: float


def resize_plan(orig_h: int, orig_w: int, target_h: int, target_w: int, keep_ratio: bool) -> Resized:
    if keep_ratio:
        s = min(target_h / orig_h, target_w / orig_w)
        return Resized(orig_h, orig_w, s, s)
    return Resized(orig_h, orig_w, target_h / orig_h, target_w / orig_w)


def resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> ``uint8 [height, width, 3]``: Pillow's bilinear filter, the
    width pass first, then the height pass (see the module docstring)."""
    h, w = img.shape[:2]
    im = Image.fromarray(img)
    if width != w:
        im = im.resize((width, h), Image.Resampling.BILINEAR)
    if height != h:
        im = im.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(im)


def preprocess_batch(
    images: list[np.ndarray],
    size: tuple[int, int],
    keep_ratio: bool = False,
    pixel_mean: tuple[float, float, float] = DEFAULT_PIXEL_MEAN,
    min_size: int = DEFAULT_MIN_SIZE,
) -> tuple[np.ndarray, list[Resized]]:
    """``uint8 [H_i, W_i, 3]`` images of any sizes -> ``float32 [B, 3, H', W']`` and plans.

    ``H' = max(H, min_size)``, ``W' = max(W, min_size)`` for target ``size = (H, W)``.
    """
    th, tw = size
    out_h, out_w = max(th, min_size), max(tw, min_size)
    batch = np.empty((len(images), 3, out_h, out_w), dtype=np.float32)
    batch[:] = np.asarray(pixel_mean, dtype=np.float32).reshape(1, 3, 1, 1)
    plans = []
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        plan = resize_plan(h, w, th, tw, keep_ratio)
        nh = th if not keep_ratio else max(1, min(th, round(h * plan.scale_y)))
        nw = tw if not keep_ratio else max(1, min(tw, round(w * plan.scale_x)))
        if keep_ratio:  # the factors actually applied after rounding to whole pixels
            plan = Resized(h, w, nh / h, nw / w)
        resized = resize_bilinear(img, nh, nw)
        batch[i, :, :nh, :nw] = resized.transpose(2, 0, 1)
        plans.append(plan)
    return batch, plans


def plan_arrays(plans: list[Resized]) -> tuple[np.ndarray, np.ndarray]:
    """``scale [B, 2]`` as (sx, sy) and ``orig_size [B, 2]`` as (H, W), for vectorized mapping."""
    scale = np.asarray([(p.scale_x, p.scale_y) for p in plans], dtype=np.float32).reshape(-1, 2)
    size = np.asarray([(p.orig_h, p.orig_w) for p in plans], dtype=np.float32).reshape(-1, 2)
    return scale, size
