"""Synthetic scenes as encoded files: what a client sends a server (load tests, failover)."""

from __future__ import annotations

import io

from PIL import Image

from acfd_deploy.data.synth import generate_sample, sample_rng


def synthetic_jpegs(count: int, height: int, width: int, seed: int = 3, quality: int = 90) -> list[bytes]:
    """``count`` synthetic cartoon scenes with faces (``sample_rng(seed, i)``) as JPEG bytes."""
    out = []
    for i in range(count):
        buf = io.BytesIO()
        Image.fromarray(generate_sample(sample_rng(seed, i), height, width)[0]).save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out
