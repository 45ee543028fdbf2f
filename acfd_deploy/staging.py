"""Replacing an output folder as one unit: the previous output survives any interruption.

A command that writes a folder of results (acfd-export, acfd-detect) builds the new one
in a hidden staging folder beside the target, and only when it is complete (and, for an
export, verified) swaps it in:

1. ``.NAME.lock`` beside the target is held with ``flock`` for the whole run, so a second
   run into the same folder is refused, naming the process that holds it. The kernel
   drops the lock when its holder dies, so a killed run never blocks the next one.
2. Leftovers of killed runs (``.NAME.staging-*``, ``.NAME.old-*``) are removed, under the
   lock, before anything else; a target that a kill left missing mid-swap is restored.
3. Files and folders are fsynced, then the staging folder and the target are exchanged
   in one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+; elsewhere two renames,
   recovered by step 2 if a kill falls between them), and the old contents are deleted.

So at every moment the target holds one complete output, the old one or the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import fsync_tree

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class FolderBusyError(AcfdError):
    """Another process is writing the same output folder."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the platform or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Lock:
    """An exclusive, non-blocking ``flock`` on a lock file that names its holder."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what, self.fd = path, what, -1

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise FolderBusyError(f"{self.what} is being written by {holder}; wait for it to finish or stop it") from None
            # the holder before us may have removed the file after we opened it: then our
            # lock is on a dead inode, and we try again on the live one
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        command = " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)) or "python"
        os.pwrite(fd, f"pid {os.getpid()} ({command[:300]})\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = -1


class StagedFolder:
    """A staging folder for ``target``; :meth:`commit` swaps it in. Use :func:`staged_folder`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.parent / f".{target.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.committed = False

    def commit(self, target: Path | None = None) -> Path:
        """Make the staged contents the target's (or ``target``'s, a sibling, e.g. where a
        failed export goes so that it does not replace a verified one)."""
        dest = target or self.target
        fsync_tree(self.path)
        if dest.exists() and _exchange(self.path, dest):
            self.committed = True  # from here on the new output is in place, whatever happens next
            _fsync_dir(dest.parent)
            shutil.rmtree(self.path, ignore_errors=True)  # the old contents, now here
        else:
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            if dest.exists():
                os.rename(dest, old)
            os.rename(self.path, dest)
            self.committed = True
            _fsync_dir(dest.parent)
            shutil.rmtree(old, ignore_errors=True)
        return dest


def _recover(target: Path) -> None:
    """Remove what killed runs left beside ``target`` (called under the lock)."""
    parent, name = target.parent, target.name
    olds = sorted(parent.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not target.exists() and olds:  # killed between the two renames of the fallback swap
        os.rename(olds.pop(), target)
    for leftover in [*olds, *parent.glob(f".{name}.staging-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def check_target(target: Path, marker: str, what: str) -> None:
    """Refuse to replace a folder that is not this command's output: ``target`` must be
    missing, empty, or hold ``marker`` (the file the command writes there)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise AcfdError(f"--out {target} exists and is not a folder")
    if target.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise AcfdError(f"--out {target} is the working folder or above it; choose a folder for the {what}")
    if any(target.iterdir()) and not (target / marker).is_file():
        raise AcfdError(
            f"--out {target} holds files but no {marker}, so it is not an earlier {what}; "
            "it would be replaced as a whole: choose an empty or new folder"
        )


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], marker: str, what: str) -> Iterator[StagedFolder]:
    """Lock ``target``, clean leftovers, and yield a :class:`StagedFolder` to fill. If the
    block ends without :meth:`StagedFolder.commit` (an error, Ctrl-C, SIGTERM), the
    staging folder is removed and the target is as it was."""
    target = Path(target).absolute()
    check_target(target, marker, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AcfdError(f"--out {target}: cannot create {target.parent} ({exc.strerror or exc})") from None
    if not os.access(target.parent, os.W_OK):
        raise AcfdError(f"--out {target}: {target.parent} is not writable")
    lock = _Lock(target.parent / f".{target.name}.lock", f"--out {target}")
    lock.acquire()
    stage = StagedFolder(target)
    try:
        _recover(target)
        stage.path.mkdir()
        yield stage
    finally:
        if not stage.committed:
            shutil.rmtree(stage.path, ignore_errors=True)
        lock.release()
