"""The end-to-end graph's preprocessing, in ONNX: uint8 ``[B, H, W, 3]`` -> the network's
float32 ``[B, 3, H', W']`` at one test scale, equal bit for bit to
:func:`acfd_deploy.pipeline.preprocess.preprocess_batch`.

Why not ONNX ``Resize``: the pipeline resizes with Pillow's bilinear filter, which
antialiases when it shrinks and rounds each of its two passes to uint8 in 22-bit fixed
point. ``Resize`` (even with ``antialias=1``, opset 18) computes in float and rounds once,
TensorRT's resize layer has no antialiasing, and OpenVINO's differs again. Pillow's
filter is separable and its weights are rational numbers of the two sizes, so the graph
computes them exactly in int64 and applies them with int32 sums (no float rounding
anywhere):

* output pixel ``o`` of an axis shrunk or stretched from ``n`` to ``m`` reads the ``k =
  2 * ceil(max(n, m) / m) + 1`` inputs from ``xmin = max(0, floor(((2o + 1) n - 2D + m) /
  2m))``, ``D = max(n, m)``;
* input ``i`` weighs ``a_i = max(0, 2D - |(2i + 1) m - (2o + 1) n|)`` (the triangle filter,
  times ``2D``), zero outside the image; Pillow's 22-bit coefficient is
  ``floor(0.5 + a_i / S * 2^22)``, ``S = sum a_i``, by integer long division (the exact
  fraction is never within Pillow's double rounding of a half for ``S < 2^23``, and every
  intermediate stays below 2^31, for runtimes that compute int64 in int32);
* a pass is ``clip((2^21 + sum pixel * coefficient) >> 22, 0, 255)``, width first,
  computed exactly in float32 (see :func:`resample_axis`).

The whole batch shares ``H, W`` (an image tensor has one size), so the factors back to
image pixels are scalars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acfd_deploy.export.onnx_builder import DOUBLE, FLOAT, INT64, GraphBuilder

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images: 32 - 8 - 2
DIGIT_BITS = 11  # coefficients are applied as two digits of this many bits (exact in float32)


@dataclass(frozen=True)
class ScaleTensors:
    """One test scale in the graph: the network input and the factors image -> tensor."""

    images: str  # float32 [B, 3, H', W']
    scale_x: str  # float32 0-D
    scale_y: str  # float32 0-D


def bilinear_coefficients(g: GraphBuilder, in_size: str, out_size: str) -> tuple[str, str]:
    """Pillow's bilinear filter from ``in_size`` to ``out_size`` pixels (int64 0-D tensors):
    input indices ``[out, k]`` and 22-bit coefficients ``[out, k]``, int64."""
    one, two = g.const(1), g.const(2)
    d = g.op("Max", [in_size, out_size])
    k = g.op("Add", [g.op("Mul", [two, g.op("Div", [g.op("Sub", [g.op("Add", [d, out_size]), one]), out_size])]), one])
    o = g.op("Range", [g.const(0), out_size, one])  # [out]
    two_o1 = g.op("Add", [g.op("Mul", [o, two]), one])  # 2o + 1
    num = g.op("Add", [g.op("Sub", [g.op("Mul", [two_o1, in_size]), g.op("Mul", [d, two])]), out_size])
    # Div truncates toward zero; only non-negative results survive the Max, where it floors
    xmin = g.op("Max", [g.op("Div", [num, g.op("Mul", [out_size, two])]), g.const(0)])
    idx = g.op("Add", [g.unsqueeze(xmin, [1]), g.unsqueeze(g.op("Range", [g.const(0), k, one]), [0])])  # [out, k]
    n = g.op(
        "Sub", [g.op("Mul", [g.op("Add", [g.op("Mul", [idx, two]), one]), out_size]), g.unsqueeze(g.op("Mul", [two_o1, in_size]), [1])]
    )
    a = g.op("Max", [g.op("Sub", [g.op("Mul", [d, two]), g.op("Abs", [n])]), g.const(0)])
    a = g.op("Where", [g.op("Less", [idx, in_size]), a, g.const(0)])
    s = g.op("ReduceSum", [a, g.const([1])], keepdims=1)
    coef = _round_fraction(g, a, s)
    idx = g.op("Min", [idx, g.op("Sub", [in_size, one])])
    return idx, coef


def _round_fraction(g: GraphBuilder, a: str, s: str) -> str:
    """``floor(0.5 + a / s * 2^22)`` for non-negative ``a <= s``, by long division in
    chunks of at most 8 bits, so every intermediate stays below 2^31 for ``s < 2^23``:
    OpenVINO's CPU plugin runs int64 arithmetic in int32, where ``a * 2^23`` overflows."""
    quotient, remainder = g.const(0), a
    for bits in (8, 7, 7):  # 22 bits in all
        scaled = g.op("Mul", [remainder, g.const(1 << bits)])
        digit = g.op("Div", [scaled, s])
        quotient = g.op("Add", [g.op("Mul", [quotient, g.const(1 << bits)]), digit])
        remainder = g.op("Sub", [scaled, g.op("Mul", [digit, s])])
    half_up = g.cast(g.op("GreaterOrEqual", [g.op("Mul", [remainder, g.const(2)]), s]), INT64)
    return g.op("Add", [quotient, half_up])


def _split_digits(g: GraphBuilder, coef: str) -> tuple[str, str]:
    """22-bit coefficients as two float32 digits base 2^11: ``(high, low)``."""
    c = g.cast(coef, FLOAT)
    base = g.const(float(1 << DIGIT_BITS), np.float32)
    high = g.op("Floor", [g.op("Div", [c, base])])
    return high, g.op("Sub", [c, g.op("Mul", [high, base])])


def resample_axis(g: GraphBuilder, pixels: str, axis: int, in_size: str, out_size: str) -> str:
    """One pass over float32 NCHW integer ``pixels`` along ``axis`` (3: width, 2: height),
    rounded and clipped to 0..255 as Pillow stores its intermediate image.

    Pillow's sums reach 2^30, beyond float32's exact integers (2^24), and runtimes differ
    in how they compute int32 (OpenVINO's CPU plugin fuses int32 arithmetic into float
    kernels). So each coefficient is split into two 11-bit digits; each digit's sum stays
    below 2^24 (255 * 2047 * k for the k <= 32 taps of a shrink by up to 15x) and the two
    are recombined with an exact carry: float32 is exact at every step, in any runtime,
    whatever order it sums in. (A shrink by more than 15x still rounds to within one grey
    level.)"""
    idx, coef = bilinear_coefficients(g, in_size, out_size)
    digits: list[str] = list(_split_digits(g, coef))
    if axis == 3:  # taps first, so the sum runs over whole rows of outputs: [B,3,H,k,out]
        gathered = g.op("Gather", [pixels, g.op("Transpose", [idx], perm=[1, 0])], axis=3)
        digits = [g.op("Transpose", [d], perm=[1, 0]) for d in digits]  # [k, out]
    else:  # [B,3,out,k,W]
        gathered = g.op("Gather", [pixels, idx], axis=2)
        digits = [g.unsqueeze(d, [2]) for d in digits]  # [out, k, 1]
    s_high, s_low = (g.op("ReduceSum", [g.op("Mul", [gathered, d]), g.const([3])], keepdims=0) for d in digits)
    base = g.const(float(1 << DIGIT_BITS), np.float32)
    high = g.op("Add", [s_high, g.op("Floor", [g.op("Div", [s_low, base])])])  # sum = high * 2^11 + (below 2^11)
    # (sum + 2^21) >> 22 == floor((high + 2^10) / 2^11): the low 11 bits never carry into it
    half = g.const(float(1 << (PRECISION_BITS - DIGIT_BITS - 1)), np.float32)
    rounded = g.op("Floor", [g.op("Div", [g.op("Add", [high, half]), g.const(float(1 << (PRECISION_BITS - DIGIT_BITS)), np.float32)])])
    return g.op("Clip", [rounded, g.const(0.0, np.float32), g.const(255.0, np.float32)])


def to_float_nchw(g: GraphBuilder, images_u8: str) -> str:
    """uint8 NHWC -> float32 NCHW (integers 0..255), once for all scales."""
    return g.cast(g.op("Transpose", [images_u8], perm=[0, 3, 1, 2]), FLOAT)


def preprocess_scale(
    g: GraphBuilder,
    pixels: str,
    height: str,
    width: str,
    size: tuple[int, int],
    keep_ratio: bool,
    min_size: int,
    pixel_mean: tuple[float, float, float],
) -> ScaleTensors:
    """The network input at test scale ``size = (H, W)`` from float32 NCHW ``pixels`` whose
    spatial size is ``height x width`` (int64 0-D): resized (stretched, or fitted keeping
    the ratio), padded bottom/right with the pixel mean to the scale (keep-ratio) and to
    ``min_size``, as float32; with the factors image -> tensor the pipeline records."""
    th, tw = size
    hd, wd = g.cast(height, DOUBLE), g.cast(width, DOUBLE)
    thd, twd = g.const(float(th), np.float64), g.const(float(tw), np.float64)
    if keep_ratio:  # as preprocess_batch, in float64 like Python: s = min(th/h, tw/w), round half to even
        s = g.op("Min", [g.op("Div", [thd, hd]), g.op("Div", [twd, wd])])
        one_d = g.const(1.0, np.float64)
        nh_d = g.op("Max", [one_d, g.op("Min", [thd, g.op("Round", [g.op("Mul", [hd, s])])])])
        nw_d = g.op("Max", [one_d, g.op("Min", [twd, g.op("Round", [g.op("Mul", [wd, s])])])])
        nh, nw = g.cast(nh_d, INT64), g.cast(nw_d, INT64)
    else:
        nh_d, nw_d = thd, twd
        nh, nw = g.const(th), g.const(tw)
    scale_y = g.cast(g.op("Div", [nh_d, hd]), FLOAT)
    scale_x = g.cast(g.op("Div", [nw_d, wd]), FLOAT)
    resized = resample_axis(g, pixels, 3, width, nw)
    resized = resample_axis(g, resized, 2, height, nh)
    out_h, out_w = max(th, min_size), max(tw, min_size)
    if keep_ratio or (out_h, out_w) != (th, tw):
        zero = g.const(0)
        pads = g.stack_scalars([zero, zero, zero, zero, zero, zero, g.op("Sub", [g.const(out_h), nh]), g.op("Sub", [g.const(out_w), nw])])
        padded = g.op("Pad", [resized, pads, g.const(0.0, np.float32)])
        rows = g.op("Less", [g.op("Range", [zero, g.const(out_h), g.const(1)]), nh])
        cols = g.op("Less", [g.op("Range", [zero, g.const(out_w), g.const(1)]), nw])
        inside = g.op("And", [g.unsqueeze(rows, [1]), g.unsqueeze(cols, [0])])  # [out_h, out_w]
        mean = g.const(np.asarray(pixel_mean, np.float32).reshape(1, 3, 1, 1), np.float32)
        resized = g.op("Where", [inside, padded, mean])
    return ScaleTensors(resized, scale_x, scale_y)
