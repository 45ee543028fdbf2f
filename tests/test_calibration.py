"""int8 calibration sees what inference sees: calibration images go through the pipeline's
own loader and preprocessing (acfd_deploy.export.int8.load_calibration), so EXIF rotation,
transparency and 16-bit images are read the same way on both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acfd_deploy.errors import AcfdError
from acfd_deploy.export.int8 import calibration_files, load_calibration
from acfd_deploy.pipeline.io import load_image
from acfd_deploy.pipeline.preprocess import preprocess_batch

SIZE = (160, 192)
MIN_SIDE = 125


def _scene(h: int, w: int) -> np.ndarray:
    """A picture whose halves differ, so a rotation or a flip shows."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), np.full_like(xx, 60)], axis=-1).astype(np.uint8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "calib"
    root.mkdir()
    # a JPEG stored landscape (220 x 140) with EXIF orientation 6: displayed portrait (140 x 220)
    rotated = Image.fromarray(_scene(140, 220))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(root / "a_rotated.jpg", exif=exif.tobytes(), quality=95)
    # RGBA whose transparent half is black underneath: a viewer (and the pipeline) shows white
    rgba = np.zeros((150, 170, 4), np.uint8)
    rgba[:, :85] = (200, 40, 40, 255)
    Image.fromarray(rgba, "RGBA").save(root / "b_sticker.png")
    # 16-bit grayscale: 0..65535, scaled to 0..255 (not clipped at 255)
    gray16 = (np.linspace(0, 65535, 180 * 130).reshape(180, 130)).astype(np.uint16)
    Image.fromarray(gray16).save(root / "c_gray16.png")
    (root / "notes.txt").write_text("not an image: skipped by suffix")
    return root


def test_calibration_tensors_are_the_pipelines(folder: Path) -> None:
    files = calibration_files(folder)
    assert [f.name for f in files] == ["a_rotated.jpg", "b_sticker.png", "c_gray16.png"]
    batches = load_calibration(folder, SIZE, MIN_SIDE)
    assert len(batches) == 3
    for f, batch in zip(files, batches):
        expected, _ = preprocess_batch([load_image(f)], SIZE, min_size=MIN_SIDE)
        assert batch.dtype == np.float32 and batch.shape == (1, 3, *SIZE)
        assert np.array_equal(batch, expected), f.name


def test_the_loader_really_applies_what_a_naive_read_misses(folder: Path) -> None:
    """The fixture is not vacuous: each file reads differently through the pipeline than
    through a plain PIL RGB conversion."""
    rotated = load_image(folder / "a_rotated.jpg")
    assert rotated.shape == (220, 140, 3)  # displayed orientation
    sticker = load_image(folder / "b_sticker.png")
    assert (sticker[:, 100:] == 255).all() and (sticker[:, :80] == (200, 40, 40)).all()
    gray = load_image(folder / "c_gray16.png")
    assert gray.max() == 255 and 120 < int(gray[90, 65, 0]) < 136  # mid-range stays mid-range
    for name in ("a_rotated.jpg", "b_sticker.png", "c_gray16.png"):
        with Image.open(folder / name) as img:
            naive = np.asarray(img.convert("RGB"))
        assert naive.shape != load_image(folder / name).shape or not np.array_equal(naive, load_image(folder / name)), name


def test_limit_and_bad_folders(folder: Path, tmp_path: Path) -> None:
    assert len(load_calibration(folder, SIZE, MIN_SIDE, limit=2)) == 2
    (folder / "d_broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(AcfdError, match=r"calibration image .*d_broken\.png: not an image file"):
        load_calibration(folder, SIZE, MIN_SIDE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AcfdError, match="holds none"):
        load_calibration(empty, SIZE, MIN_SIDE)
    with pytest.raises(AcfdError, match="is not a folder"):
        load_calibration(tmp_path / "missing", SIZE, MIN_SIDE)
