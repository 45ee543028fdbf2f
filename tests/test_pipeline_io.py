"""Every odd image kind a user's folder holds, and one bad file not stopping a batch."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.io import ImageLoadError, find_images, image_size, iter_loaded, load_image
from tests.helpers import bomb_png, gradient, png_chunk


def test_rgb_png_and_jpeg(tmp_path: Path) -> None:
    arr = gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    png, jpg = load_image(tmp_path / "a.png"), load_image(tmp_path / "a.jpg")
    assert png.dtype == np.uint8 and png.shape == (30, 40, 3)
    assert np.array_equal(png, arr)
    assert jpg.shape == (30, 40, 3) and np.abs(jpg.astype(int) - arr).mean() < 4


def test_grayscale_and_palette(tmp_path: Path) -> None:
    gray = gradient()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (30, 40, 3) and np.array_equal(out[..., 1], gray) and np.array_equal(out[..., 2], gray)
    Image.fromarray(gradient()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (30, 40, 3)
    Image.fromarray(gray > 100).save(tmp_path / "bw.png")  # mode "1"
    bw = load_image(tmp_path / "bw.png")
    assert set(np.unique(bw)) <= {0, 255}


def test_rgba_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    out = load_image(tmp_path / "t.png")
    assert out[0, 0].tolist() == [200, 0, 0]
    assert out[9, 9].tolist() == [255, 255, 255]
    la = Image.fromarray(rgba[..., [1, 3]], mode="LA")
    la.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[9, 9].tolist() == [255, 255, 255]


def test_sixteen_bit_scaled_to_eight(tmp_path: Path) -> None:
    arr = np.array([[0, 257 * 100, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out[0, :, 0].tolist() == [0, 100, 255]


def test_sixteen_bit_rgb(tmp_path: Path) -> None:
    h, w = 4, 3
    arr = np.zeros((h, w, 3), dtype=">u2")
    arr[..., 0], arr[..., 1] = 65535, 257 * 100
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)  # 16 bits per channel, RGB
    (tmp_path / "rgb16.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    )
    out = load_image(tmp_path / "rgb16.png")
    assert out.shape == (4, 3, 3) and out[0, 0].tolist() == [255, 100, 0]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.fromarray(gradient()).convert("CMYK").save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg").shape == (30, 40, 3)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :5] = 255  # white strip on the left of the stored pixels
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90 degrees clockwise
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:5].mean() > 200 and out[-5:].mean() < 50  # the strip is now on top
    assert image_size(tmp_path / "r.jpg") == (40, 20)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image\n" * 10, "not an image"),
        ("trunc.png", None, "truncated"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is None:
        Image.fromarray(gradient(200, 200)).save(tmp_path / "full.png")
        data = (tmp_path / "full.png").read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as info:
        load_image(path)
    assert name in str(info.value)
    assert isinstance(info.value, AcfdError)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(100_000, 100_000))  # 10 gigapixels claimed in 100 bytes
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)
    Image.fromarray(gradient()).save(tmp_path / "small.png")
    with pytest.raises(ImageLoadError, match="MP limit"):
        load_image(tmp_path / "small.png", max_pixels=100)


def test_batch_goes_on_after_a_bad_file(tmp_path: Path) -> None:
    Image.fromarray(gradient()).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"garbage")
    Image.fromarray(gradient(12, 17)).save(tmp_path / "c.png")
    results = list(iter_loaded([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"]))
    assert [p.name for p, _ in results] == ["a.png", "b.png", "c.png"]
    assert isinstance(results[1][1], ImageLoadError)
    assert results[2][1].shape == (12, 17, 3)


def test_find_images(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    extra = tmp_path / "sub" / "z.webp"
    extra.write_bytes(b"x")
    assert [p.name for p in find_images([tmp_path, extra])] == ["a.jpg", "b.PNG", "z.webp"]
    with pytest.raises(AcfdError, match="no such file"):
        find_images([tmp_path / "missing_dir"])


@pytest.mark.parametrize(("width", "height"), [(0, 0), (0, 10)])
def test_zero_dimension_image_is_an_error(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "zero.png"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b""))
    with pytest.raises(ImageLoadError, match="zero.png"):
        load_image(path)
