"""The learning-rate schedule of Sec. 4.1: linear warm-up from 1e-6 to the base rate over
the first 1,000 iterations, then division by 10 at each milestone epoch."""

from __future__ import annotations


def learning_rate(
    iteration: int,
    epoch: int,
    base_lr: float,
    milestones: tuple[int, ...],
    warmup_iters: int = 1000,
    warmup_start: float = 1e-6,
    gamma: float = 0.1,
) -> float:
    decayed = base_lr * gamma ** sum(epoch >= m for m in milestones)
    if iteration < warmup_iters:
        return warmup_start + (decayed - warmup_start) * iteration / warmup_iters
    return decayed


def paper_milestones(epochs: int) -> tuple[int, ...]:
    """The final model's 200, 250, 280 of 300 epochs, scaled to ``epochs``."""
    return tuple(sorted({max(1, round(epochs * f)) for f in (200 / 300, 250 / 300, 280 / 300)}))
