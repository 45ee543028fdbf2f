"""The images every artifact is compared on: realistic synthetic cartoon scenes (random
noise makes a detector's outputs meaningless), at the export size and at the smallest of
the paper's test scales, 480x645, which is neither square nor a multiple of 128.

The images depend only on the size, count and seed, never on the batch: acfd-export and
acfd-bench cut the same images into different batches and reach the same verdict.
"""

from __future__ import annotations

import numpy as np

PARITY_IMAGES = 4
EXTRA_SIZE = (480, 645)
EXTRA_IMAGES = 2
_SEED_OFFSET = 7919  # apart from the seeds training and validation sets use


def parity_inputs(imgsz: tuple[int, int], count: int = PARITY_IMAGES, batch: int = 2, seed: int = 0) -> list[np.ndarray]:
    """``count`` scenes at ``imgsz`` and two at 480x645, as float32 ``[b, 3, H, W]``
    batches of at most ``batch`` images (the largest batch an engine profile allows)."""
    from acfd_deploy.data.synth import synthetic_batch

    if count < 1 or batch < 1:
        raise ValueError(f"parity needs at least one image and a batch of at least one, got {count} and {batch}")
    groups = [(tuple(imgsz), count, 0)]
    if tuple(imgsz) != EXTRA_SIZE:
        groups.append((EXTRA_SIZE, EXTRA_IMAGES, 1000))
    batches: list[np.ndarray] = []
    for (h, w), n, offset in groups:
        images = synthetic_batch(n, h, w, seed + _SEED_OFFSET, first=offset)
        batches.extend(images[i : i + batch] for i in range(0, n, batch))
    return batches


def describe(batches: list[np.ndarray]) -> dict[str, object]:
    """What the manifest records of the parity images."""
    return {"source": "synthetic cartoon scenes from acfd_deploy.data.synth", "batches": [list(b.shape) for b in batches]}
