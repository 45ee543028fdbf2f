"""The paper's post-processing, batched: per scale the top 1,000 with score > 0.08, boxes
mapped back to each image's own pixels (those clipped to less than a pixel dropped),
scales merged, NMS at IoU 0.55, top 100.

Everything is tensor code over ``[B, ...]`` with per-image factors, so a batch of images
of different original sizes is one call; numpy arrays go through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acfd_deploy.pipeline.nms import batched_nms, to_torch


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 0.08
    pre_nms_topk: int = 1000
    nms_iou: float = 0.55
    max_det: int = 100
    # a box narrower or shorter than this (pixels, after clipping to the image) is dropped:
    # one that lay outside the image clips to nothing and is no detection (as torchvision's
    # remove_small_boxes); measured on the first demo model, such boxes carried scores of 0.95
    min_box_size: float = 1.0


def select_topk(
    boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image the ``k`` best with score > threshold: ``[B, k, 4]``, ``[B, k]``, valid ``[B, k]``."""
    k = min(k, scores.shape[1])
    valid = scores > score_threshold
    key = torch.where(valid, scores, torch.full_like(scores, -torch.inf))
    top_scores, idx = torch.sort(key, dim=1, descending=True, stable=True)
    idx, top_scores = idx[:, :k], top_scores[:, :k]
    top_boxes = torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 4))
    top_valid = torch.gather(valid, 1, idx)
    return top_boxes, torch.where(top_valid, top_scores, torch.zeros_like(top_scores)), top_valid


def map_to_image(boxes: torch.Tensor, scale_xy: torch.Tensor, orig_hw: torch.Tensor) -> torch.Tensor:
    """Tensor pixels -> image pixels: divide by each image's (sx, sy), clip to ``[0, W-1] x [0, H-1]``.

    ``boxes [B, K, 4]``, ``scale_xy [B, 2]``, ``orig_hw [B, 2]``. The last pixel is
    ``W - 1`` because challenge coordinates are inclusive pixels.
    """
    factors = scale_xy.to(boxes.dtype).repeat(1, 2)[:, None, :]  # sx, sy, sx, sy
    mapped = boxes / factors
    hi = torch.stack((orig_hw[:, 1], orig_hw[:, 0]), dim=1).to(boxes.dtype).repeat(1, 2)[:, None, :] - 1
    return torch.minimum(mapped.clamp(min=0), hi)


def postprocess(
    per_scale: list[tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]],
    orig_hw: torch.Tensor | np.ndarray,
    config: PostprocessConfig | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Final detections per image, best first: ``(boxes float32 [k, 4], scores float32 [k])``.

    ``per_scale`` holds one ``(boxes [B, N_s, 4], scores [B, N_s], scale_xy [B, 2])`` per
    test scale, the raw runner outputs in tensor pixels; ``orig_hw [B, 2]`` are the
    images' (H, W).
    """
    cfg = config or PostprocessConfig()
    hw = to_torch(orig_hw).float()
    all_boxes, all_scores, all_valid = [], [], []
    for boxes, scores, scale in per_scale:
        b_t, s_t = to_torch(boxes).float(), to_torch(scores).float()
        tb, ts, tv = select_topk(b_t, s_t, cfg.score_threshold, cfg.pre_nms_topk)
        mapped = map_to_image(tb, to_torch(scale).float().to(tb.device), hw.to(tb.device))
        sized = ((mapped[..., 2:] - mapped[..., :2]) >= cfg.min_box_size).all(dim=-1)
        all_boxes.append(mapped)
        all_scores.append(torch.where(sized, ts, torch.zeros_like(ts)))
        all_valid.append(tv & sized)
    boxes_m, scores_m, valid_m = torch.cat(all_boxes, 1), torch.cat(all_scores, 1), torch.cat(all_valid, 1)
    keep = batched_nms(boxes_m, scores_m, cfg.nms_iou, valid_m, max_keep=cfg.max_det)
    key = torch.where(keep, scores_m, torch.full_like(scores_m, -torch.inf))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices[:, : cfg.max_det]
    counts = keep.sum(dim=1).clamp(max=cfg.max_det).tolist()
    out_boxes = torch.gather(boxes_m, 1, order[..., None].expand(-1, -1, 4)).cpu().numpy()
    out_scores = torch.gather(scores_m, 1, order).cpu().numpy()
    return [(out_boxes[i, :n].astype(np.float32), out_scores[i, :n].astype(np.float32)) for i, n in enumerate(counts)]
