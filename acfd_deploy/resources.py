"""Files that ship inside the package: the demo model, its card, the calibration images.

They are package data, found through the installed package (``importlib.resources``),
never relative to the working folder or a checkout, so ``pip install acfd-deploy`` and
``acfd-export --int8`` work from any folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from acfd_deploy.errors import AcfdError

DEMO_NAME = "acfd-tiny-demo"


def asset(relative: str) -> Path:
    """The path of a file or folder under ``acfd_deploy/assets`` as installed."""
    return Path(str(resources.files("acfd_deploy").joinpath("assets", relative)))


def demo_weights() -> Path:
    """The bundled demo model: acfd-tiny trained by acfd-train on synthetic cartoon faces
    (its card: :func:`demo_card`). The default of every command that takes ``--model``."""
    path = asset(f"{DEMO_NAME}.pth")
    if not path.is_file():
        raise AcfdError(f"the bundled demo model is missing from this installation ({path}); reinstall acfd-deploy or pass --model PATH")
    return path


def demo_card() -> Path:
    return asset(f"{DEMO_NAME}.md")


def calibration_dir() -> Path:
    """The bundled int8 calibration images (synthetic cartoon scenes), the default of
    ``acfd-export --int8 --calib``."""
    path = asset("calib")
    if not path.is_dir():
        raise AcfdError(f"the bundled calibration images are missing from this installation ({path}); pass --calib DIR")
    return path
