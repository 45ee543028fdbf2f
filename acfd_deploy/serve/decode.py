"""Encoded image bytes (one request's payload) to the RGB array acfd-detect would have read.

A file on disk and the same file's bytes in a request must give the same detections, so
this applies exactly the rules of :func:`acfd_deploy.pipeline.io.load_image` (EXIF
rotation, 16-bit scaled to 8, transparency over white, the decompression-bomb limit) and
reuses its :func:`~acfd_deploy.pipeline.io.to_rgb_array`; only the source differs (a
buffer instead of a path), and the messages name the request's image, not a file.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from acfd_deploy.pipeline.io import DEFAULT_MAX_PIXELS, ImageLoadError, to_rgb_array


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, label: str = "image") -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB from the encoded bytes of a JPEG, PNG, BMP, WebP or TIFF file.

    Raises :class:`ImageLoadError` (``"<label>: <why>"``) for empty bytes, bytes that are
    no image, a truncated file, a zero-size image or one over ``max_pixels``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageLoadError(f"{label}: expected the encoded bytes of an image file, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageLoadError(f"{label}: empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data))) as img:
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
        raise ImageLoadError(f"{label}: not an image (unrecognized format, {len(data)} bytes)") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise ImageLoadError(f"{label}: unreadable or truncated image ({' '.join(str(exc).split()) or type(exc).__name__})") from None
