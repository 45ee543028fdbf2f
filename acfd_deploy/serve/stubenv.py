"""The Python that the bundled Triton's Python-backend stub runs our models in.

The stub (``triton_python_backend_stub``, one process per model instance) embeds Python in
*isolated* mode: ``PYTHONPATH`` is ignored, and ``sys.prefix`` comes from the first
``python3`` on ``PATH`` (a ``pyvenv.cfg`` beside it makes that a virtual environment). So
the launcher stages a small virtual environment and puts its ``bin`` first on ``PATH``:

* ``bin/python3`` -> the running interpreter's base binary, ``pyvenv.cfg`` -> its home;
* one ``.pth`` file in its site-packages that puts, in order: a numpy 1.x folder (see
  below), the folder ``acfd_deploy`` was imported from, the caller's ``PYTHONPATH``, and
  then every site-packages folder of the running interpreter (``site.addsitedir``, so
  their ``.pth`` files, editable installs included, work as they do here).

Why numpy 1.x: PyTriton 0.7's stub was compiled against numpy 1.x with a pybind11 that
predates numpy 2. Under numpy 2 it reads the element size of every request tensor as 0
and silently replaces its contents (an FP32 input arrives as copies of its first value, a
BYTES input as its first byte repeated, which then crashes the stub). The stub therefore
gets its own numpy<2, installed once into :func:`stub_site_dir` (outside the project's
environment, whose numpy stays as it is): ``python -m acfd_deploy.serve.stubenv --install``.
torch, onnxruntime and Pillow built for numpy 2 run on numpy 1.24+ (checked with 1.26.4).
"""

from __future__ import annotations

import argparse
import os
import re
import site
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from acfd_deploy.errors import AcfdError

STUB_NUMPY = "numpy>=1.24,<2"


def stub_site_dir() -> Path:
    """Where the stub's numpy<2 lives: ``$ACFD_TRITON_STUB_SITE``, else
    ``~/.cache/acfd-deploy/triton-stub-site-py3.X`` (per Python minor version: numpy wheels are)."""
    override = os.environ.get("ACFD_TRITON_STUB_SITE")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "acfd-deploy" / f"triton-stub-site-py{sys.version_info.major}.{sys.version_info.minor}"


def install_command(target: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade", "--target", str(target or stub_site_dir()), STUB_NUMPY]


def _numpy_version_in(folder: Path) -> str | None:
    for info in sorted(folder.glob("numpy-*.dist-info")):
        match = re.match(r"numpy-([0-9][^-]*)\.dist-info", info.name)
        if match and (folder / "numpy" / "__init__.py").is_file():
            return match.group(1)
    return None


def running_numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def stub_numpy_site() -> Path | None:
    """The numpy<2 folder the stub needs, or ``None`` where the running numpy is already 1.x.
    An :class:`AcfdError` with the one command to run if it is missing."""
    if running_numpy_major() < 2:
        return None
    folder = stub_site_dir()
    version = _numpy_version_in(folder) if folder.is_dir() else None
    if version is None or int(version.split(".")[0]) >= 2:
        import numpy

        raise AcfdError(
            f"the bundled Triton's Python-backend stub needs numpy<2 (numpy {numpy.__version__} corrupts its tensors); "
            f"install it once for the stub, outside this environment: python -m acfd_deploy.serve.stubenv --install "
            f"(runs: {' '.join(install_command())})"
        )
    return folder


def _acfd_root() -> Path:
    import acfd_deploy

    return Path(acfd_deploy.__file__).resolve().parents[1]


def site_dirs() -> list[str]:
    """The running interpreter's site-packages folders (and the user site, if it is on)."""
    dirs = list(site.getsitepackages())
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user and Path(user).is_dir():
        dirs.append(user)
    return [d for d in dirs if Path(d).is_dir()]


def pth_lines(numpy_site: Path | None) -> list[str]:
    """The ``.pth`` lines, in the order the module docstring gives."""
    lines: list[str] = []
    for entry in [
        str(numpy_site) if numpy_site else "",
        str(_acfd_root()),
        *os.environ.get("PYTHONPATH", "").split(os.pathsep),
    ]:
        if entry and entry not in lines:
            lines.append(entry)
    lines += [f"import site; site.addsitedir({d!r})" for d in site_dirs()]
    return lines


def stage_stub_env(stage_dir: str | os.PathLike[str]) -> Path:
    """Write the stub's virtual environment under ``<stage>/stubenv``; return its ``bin``
    (to put first on the server's ``PATH``)."""
    numpy_site = stub_numpy_site()
    env = Path(stage_dir) / "stubenv"
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    bin_dir = env / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for name in ("python3", "python", minor):
        link = bin_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(base)
    version = ".".join(str(v) for v in sys.version_info[:3])
    (env / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\nversion = {version}\n")
    site_packages = env / "lib" / minor / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    (site_packages / "_acfd_serve_stub.pth").write_text("\n".join(pth_lines(numpy_site)) + "\n")
    return bin_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m acfd_deploy.serve.stubenv",
        description="The numpy<2 that PyTriton's bundled Python-backend stub needs (acfd-serve).",
    )
    parser.add_argument("--install", action="store_true", help=f"pip-install {STUB_NUMPY} into the stub's folder (once, at setup time)")
    args = parser.parse_args(argv)
    folder = stub_site_dir()
    if args.install and running_numpy_major() >= 2:
        cmd = install_command(folder)
        print("running:", " ".join(cmd), flush=True)
        code = subprocess.call(cmd)
        if code != 0:
            return code
    try:
        found = stub_numpy_site()
    except AcfdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"stub numpy: {found} (numpy {_numpy_version_in(found)})" if found else "stub numpy: not needed (this Python's numpy is 1.x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
