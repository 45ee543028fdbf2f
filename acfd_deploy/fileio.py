"""Writing files so that an interrupted run never leaves one that looks complete
(whole output folders: :mod:`acfd_deploy.staging`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from acfd_deploy.errors import AcfdError


def require_file(path: str | os.PathLike[str], what: str, error: type[AcfdError] = AcfdError, hint: str = "") -> Path:
    """``path`` as a :class:`Path` when it is a file; else bad input in the one wording
    every command uses: ``{what} not found: {path}``, or ``{what}: {path} is not a file``
    (a folder, a device) with ``hint`` after it."""
    found = Path(path)
    if not found.exists():
        raise error(f"{what} not found: {found}")
    if not found.is_file():
        raise error(f"{what}: {found} is not a file{hint}")
    return found


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The temporary name starts with a dot and ends in ``.partial``, so no tool mistakes it
    for the artifact, and it is removed if the block raises (including KeyboardInterrupt).
    The file gets the mode a plain ``open(path, "w")`` would give (``mkstemp`` makes 0600
    files, which a server running as another user, Triton for one, could not read).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
            _fsync_file(tmp)  # the bytes reach the disk before the name does
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every file and folder under ``root`` (and ``root``): before a folder is
    renamed into place, its contents must be on disk, or a crash could expose a
    complete-looking folder of empty files."""
    root = Path(root)
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_file(Path(folder) / name)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
