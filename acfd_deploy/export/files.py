"""File helpers for artifacts: written atomically (``fileio.atomic_path``), then given
ordinary permissions (``mkstemp`` creates 0600 files, which a server running as another
user, Triton for one, could not read)."""

from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(path: str | os.PathLike[str]) -> Path:
    """Give ``path`` the mode a plain ``open(..., "w")`` would have (0666 less the umask)."""
    os.chmod(path, 0o666 & ~_umask())
    return Path(path)
