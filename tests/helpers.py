"""Helpers several test modules share: test images, hand-made PNGs, calibration folders,
and what a staged write left next to its target."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from acfd_deploy.calibrate import smooth_random_images

# ---------------------------------------------------------------- images


def gradient(h: int = 30, w: int = 40) -> np.ndarray:
    """A small ``uint8 [h, w, 3]`` RGB gradient."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.uint8)


def encoded(arr: np.ndarray, fmt: str, **kw: Any) -> bytes:
    """``arr`` as the bytes of an image file in ``fmt`` (PIL's format name and options)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk, to hand-craft files PIL will not write."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (900 MP by default) with almost
    no data behind it: refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b"")


# ---------------------------------------------------------------- calibration images


def realistic(batch: int, h: int, w: int, seed: int) -> np.ndarray:
    """Synthetic cartoon scenes when the generator is there, else smooth noise."""
    try:
        from acfd_deploy.data.synth import generate_sample, sample_rng
    except ImportError:
        return smooth_random_images(batch, h, w, seed=seed).numpy()
    imgs = [generate_sample(sample_rng(seed, i), h, w)[0] for i in range(batch)]
    return np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2), dtype=np.float32)


def write_calib(folder: Path, count: int = 6, size: tuple[int, int] = (180, 240)) -> Path:
    """``count`` :func:`realistic` images of ``size`` as PNGs in ``folder`` (made if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    imgs = realistic(count, *size, seed=99)
    for i, img in enumerate(imgs):
        Image.fromarray(img.transpose(1, 2, 0).astype(np.uint8)).save(folder / f"c{i}.png")
    return folder


# ---------------------------------------------------------------- staged writes


def beside(target: Path) -> list[str]:
    """What a run left next to ``target``: staging folders, old copies, its lock file."""
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


# ---------------------------------------------------------------- servers


def need_triton_server(allow_module_level: bool = False) -> None:
    """Skip unless the Triton client, the bundled server and its stub's numpy are here
    (the reason says what to install)."""
    import pytest

    from acfd_deploy.errors import AcfdError

    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install 'acfd-deploy[serve]')")
    from acfd_deploy.serve.server import find_tritonserver
    from acfd_deploy.serve.stubenv import stub_numpy_site

    try:
        find_tritonserver()
        stub_numpy_site()
    except AcfdError as exc:
        pytest.skip(str(exc), allow_module_level=allow_module_level)


def wait_http_ready(proc: Any, http: str, timeout: float, poll_s: float = 0.3) -> bool:
    """Poll ``http://{http}/v2/health/ready`` until it answers 200 (True), ``proc`` exits or
    ``timeout`` seconds pass (False)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(poll_s)
    return False
