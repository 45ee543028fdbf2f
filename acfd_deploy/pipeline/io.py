"""Loading images the way a user's folder holds them, and failing one file at a time.

Every image becomes ``uint8 [H, W, 3]`` RGB in its *displayed* orientation (EXIF
rotation applied, so boxes match what a viewer shows). Grayscale is replicated to three
channels, 16-bit is scaled to 8 (``v / 257``), transparency is composited over white
(what a viewer shows behind a sticker), palette and CMYK images are converted. Anything
that cannot become such an array raises :class:`ImageLoadError` naming the file; callers
that process many files catch it and go on. :func:`decode_image` applies the same rules to
a file's bytes (a served request), with one implementation for both.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from acfd_deploy.errors import AcfdError, one_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# 1920x1080 is 2 MP; 64 MP (e.g. 8000x8000) is far beyond any cartoon frame but still
# fits in memory (192 MB as RGB). Anything larger is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 64_000_000


class ImageLoadError(AcfdError):
    """One file that is not a usable image; the message names the file."""


def _read(source: str | os.PathLike[str] | IO[bytes], label: str, max_pixels: int, unrecognized: str) -> np.ndarray:
    """The rules of the module docstring for one opened source (a path or a buffer);
    every failure is an :class:`ImageLoadError` that starts with ``label``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                w, h = img.size  # header only: nothing decoded yet
                if w < 1 or h < 1:
                    raise ImageLoadError(f"{label}: zero-size image ({w}x{h})")
                if w * h > max_pixels:
                    raise ImageLoadError(
                        f"{label}: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit (decompression bomb?)"
                    )
                img.load()
                return to_rgb_array(ImageOps.exif_transpose(img))
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{label}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: {unrecognized}") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise ImageLoadError(f"{label}: unreadable or truncated image ({one_line(exc)})") from None


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as ``uint8 [H, W, 3]`` RGB; see the module docstring for the rules."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageLoadError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    return _read(path, str(path), max_pixels, "not an image file (unrecognized format)")


def decode_image(data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS, label: str = "image") -> np.ndarray:
    """The encoded bytes of an image file (a served request's payload) as ``uint8 [H, W, 3]``
    RGB, by exactly the rules :func:`load_image` applies to the same file on disk, so a file
    and its bytes give the same detections. Messages start with ``label``, not a path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageLoadError(f"{label}: expected the encoded bytes of an image file, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageLoadError(f"{label}: empty (0 bytes)")
    return _read(io.BytesIO(bytes(data)), label, max_pixels, f"not an image (unrecognized format, {len(data)} bytes)")


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(H, W)`` as displayed (EXIF rotation applied), from the header only."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"{path}: not a readable image ({one_line(exc)})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode to ``uint8 [H, W, 3]`` RGB."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        # PIL opens 16-bit grayscale PNGs as "I;16" or (older versions) "I"; either way
        # the range is 0..65535. A 32-bit "I" image with values above that is clipped.
        gray = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 1.0
        gray = np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(arr)


def find_images(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files given directly, plus the image files (by suffix) inside given directories,
    sorted, non-recursive. A path that does not exist is an error: a typo should not
    silently give an empty run."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.exists():
            found.append(p)
        else:
            raise AcfdError(f"no such file or directory: {p}")
    return found


def iter_loaded(paths: Iterable[Path], max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[tuple[Path, np.ndarray | ImageLoadError]]:
    """``(path, array)`` or ``(path, error)`` for each path, in order, never raising."""
    for p in paths:
        try:
            yield p, load_image(p, max_pixels)
        except ImageLoadError as exc:
            yield p, exc
