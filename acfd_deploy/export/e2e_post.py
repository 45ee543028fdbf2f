"""The end-to-end graph's post-processing, in ONNX: the paper's procedure as
:func:`acfd_deploy.pipeline.postprocess.postprocess` runs it, op for op.

Per scale: the top ``pre_nms_topk`` scores (``TopK`` keeps the lower index first among
equal scores, as the pipeline's stable sort), those above ``score_threshold`` valid,
boxes divided by the scale's factors, clipped to ``[0, W-1] x [0, H-1]``, boxes narrower
or shorter than ``min_box_size`` invalid, invalid scores zeroed. Then the scales merged
in order, ``NonMaxSuppression`` (greedy, a box suppressed when its IoU with a kept,
higher-scoring box exceeds the threshold, ties in the input order: the semantics of
:mod:`acfd_deploy.pipeline.nms`), and the kept boxes sorted by score (stably) into a
fixed ``[B, max_det]`` output. The selected indices are turned into a keep mask and
sorted here rather than trusted in the order the runtime emits them, so the output
does not depend on how a runtime orders ``NonMaxSuppression``'s result.
"""

from __future__ import annotations

import numpy as np

from acfd_deploy.export.onnx_builder import INT32, INT64, GraphBuilder
from acfd_deploy.pipeline.postprocess import PostprocessConfig


def select_and_map(
    g: GraphBuilder, boxes: str, scores: str, scale_x: str, scale_y: str, height: str, width: str, cfg: PostprocessConfig
) -> tuple[str, str]:
    """One scale's candidates in image pixels: ``boxes [B, k, 4]``, ``scores [B, k]``
    (zero where not valid)."""
    n = g.dim(scores, 1)
    k = g.unsqueeze(g.op("Min", [n, g.const(cfg.pre_nms_topk)]), [0])
    top_scores, idx = g.op("TopK", [scores, k], outputs=2, axis=1, largest=1, sorted=1)
    gather_idx = g.op("Expand", [g.unsqueeze(idx, [2]), g.stack_scalars([g.dim(idx, 0), g.dim(idx, 1), g.const(4)])])
    top_boxes = g.op("GatherElements", [boxes, gather_idx], axis=1)
    valid = g.op("Greater", [top_scores, g.const(cfg.score_threshold, np.float32)])
    factors = g.op("Concat", [g.unsqueeze(s, [0]) for s in (scale_x, scale_y, scale_x, scale_y)], axis=0)  # [4]
    mapped = g.op("Div", [top_boxes, factors])
    w1 = g.op("Sub", [g.cast(width, 1), g.const(1.0, np.float32)])
    h1 = g.op("Sub", [g.cast(height, 1), g.const(1.0, np.float32)])
    hi = g.op("Concat", [g.unsqueeze(s, [0]) for s in (w1, h1, w1, h1)], axis=0)
    mapped = g.op("Min", [g.op("Max", [mapped, g.const(0.0, np.float32)]), hi])
    starts, ends = g.op("Split", [mapped, g.const([2, 2])], outputs=2, axis=2)
    size_x, size_y = g.op("Split", [g.op("Sub", [ends, starts]), g.const([1, 1])], outputs=2, axis=2)
    sized = g.squeeze(g.op("Min", [size_x, size_y]), [2])
    valid = g.op("And", [valid, g.op("GreaterOrEqual", [sized, g.const(cfg.min_box_size, np.float32)])])
    return mapped, g.op("Where", [valid, top_scores, g.const(0.0, np.float32)])


def merge_and_suppress(g: GraphBuilder, per_scale: list[tuple[str, str]], cfg: PostprocessConfig) -> tuple[str, str, str]:
    """Scales merged, NMS, the best ``max_det``: ``num_dets int32 [B, 1]``, ``det_boxes
    [B, max_det, 4]``, ``det_scores [B, max_det]``, rows past ``num_dets`` zero."""
    boxes = g.op("Concat", [b for b, _ in per_scale], axis=1) if len(per_scale) > 1 else per_scale[0][0]
    scores = g.op("Concat", [s for _, s in per_scale], axis=1) if len(per_scale) > 1 else per_scale[0][1]
    selected = g.op(
        "NonMaxSuppression",
        [
            boxes,
            g.unsqueeze(scores, [1]),
            g.const([cfg.max_det]),
            g.const([cfg.nms_iou], np.float32),
            g.const([max(cfg.score_threshold, 0.0)], np.float32),
        ],
        center_point_box=0,  # corners; NMS takes either diagonal, so xyxy reads as yxyx, same IoU
    )
    where = g.op("Gather", [selected, g.const([0, 2])], axis=1)  # (batch, box) of each kept box
    n_kept = g.dim(selected, 0)
    keep = g.op(
        "ScatterND",
        [g.op("Mul", [scores, g.const(0.0, np.float32)]), where, g.op("Expand", [g.const(1.0, np.float32), g.unsqueeze(n_kept, [0])])],
    )
    kept = g.op("Greater", [keep, g.const(0.5, np.float32)])
    key = g.op("Where", [kept, scores, g.const(-1.0, np.float32)])
    m = g.dim(scores, 1)
    k = g.op("Min", [m, g.const(cfg.max_det)])
    top, order = g.op("TopK", [key, g.unsqueeze(k, [0])], outputs=2, axis=1, largest=1, sorted=1)
    real = g.op("GreaterOrEqual", [top, g.const(0.0, np.float32)])  # a kept box (its score > threshold >= 0)
    det_scores = g.op("Where", [real, top, g.const(0.0, np.float32)])
    gather_idx = g.op("Expand", [g.unsqueeze(order, [2]), g.stack_scalars([g.dim(order, 0), k, g.const(4)])])
    det_boxes = g.op("Mul", [g.op("GatherElements", [boxes, gather_idx], axis=1), g.cast(g.unsqueeze(real, [2]), 1)])
    count = g.op("Min", [g.op("ReduceSum", [g.cast(kept, INT64), g.const([1])], keepdims=1), g.const(cfg.max_det)])
    pad = g.op("Sub", [g.const(cfg.max_det), k])
    zero = g.const(0)
    det_boxes = g.op("Pad", [det_boxes, g.stack_scalars([zero, zero, zero, zero, pad, zero]), g.const(0.0, np.float32)])
    det_scores = g.op("Pad", [det_scores, g.stack_scalars([zero, zero, zero, pad]), g.const(0.0, np.float32)])
    return g.cast(count, INT32), det_boxes, det_scores
