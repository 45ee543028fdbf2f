"""Comparisons shared by the parity tests (tolerances of DESIGN.md section 8)."""

from __future__ import annotations

import torch

SCORE_ATOL = 1e-4
BOX_RTOL = 1e-4


def max_score_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def max_box_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Elementwise |a - b| / max(|a|, 1): relative for large coordinates, absolute near 0."""
    a, b = a.double(), b.double()
    return ((a - b).abs() / a.abs().clamp(min=1.0)).max().item()
