"""The AOTInductor package (``.pt2``) as this project writes it: the zip archive
``torch._inductor.aoti_compile_and_package`` makes, plus one JSON entry of ours,
``<root>/extra/acfd.json``, in the archive's own ``extra/`` folder (where PyTorch's
``package_pt2`` keeps a package's extra files).

The entry says what the package is bound to (the device kind and CPU instruction set it
was compiled for, the torch version that compiled it) and what it computes (config,
precision, input ranges, source checkpoint): everything a consumer checks *before*
``aoti_load_package`` runs the package's shared library. It is read with :mod:`zipfile`
alone, so listing, checking and refusing a package never loads the model. This module is
pure Python (torch is imported only to ask the running version), like runtime/plan.py for
TensorRT plans: the export side writes the entry, the runtime side reads it.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path

PT2_FORMAT = "acfd-pt2/1"
METADATA_ENTRY = "extra/acfd.json"  # under the archive's root folder
AOTI_DIR = "data/aotinductor/"
PRECISIONS = ("fp32", "fp16")
UNKNOWN = "unknown"


class PackageMismatchError(AcfdError):
    """A package compiled for another device, CPU instruction set or torch version."""


def _root(names: Iterable[str]) -> str | None:
    """The archive's root folder: the one holding ``archive_format`` (a PT2 archive)."""
    for name in names:
        head, _, tail = name.partition("/")
        if tail == "archive_format":
            return head
    return None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The package's acfd metadata, after checking that ``path`` is a whole zip holding
    an AOTInductor package; an :class:`AcfdError` naming what it is instead."""
    path = Path(path)
    if not path.is_file():
        raise AcfdError(f"AOTInductor package not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            root = _root(names)
            if root is None or archive.read(f"{root}/archive_format") != b"pt2":
                raise AcfdError(f"{path} is a zip archive but not a PyTorch 2 package (no archive_format 'pt2' entry)")
            if not any(n.startswith(f"{root}/{AOTI_DIR}") and n.endswith(".so") for n in names):
                raise AcfdError(f"{path} is a PyTorch 2 archive without a compiled AOTInductor model (no {AOTI_DIR}*.so)")
            bad = archive.testzip()  # every entry's CRC: a damaged shared library is refused, not loaded
            if bad is not None:
                raise AcfdError(f"{path} is damaged: the entry {bad} fails its CRC check; export it again")
            entry = f"{root}/{METADATA_ENTRY}"
            if entry not in names:
                raise AcfdError(
                    f"{path} is an AOTInductor package without acfd metadata ({METADATA_ENTRY}): export it with acfd-export --pt2"
                )
            meta = json.loads(archive.read(entry))
    except zipfile.BadZipFile:
        raise AcfdError(f"{path} is not a zip archive (a truncated or foreign file): an AOTInductor package is a .pt2 zip") from None
    except (OSError, EOFError, zipfile.LargeZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AcfdError(f"{path} cannot be read as an AOTInductor package ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(meta, dict) or meta.get("format") != PT2_FORMAT:
        raise AcfdError(f"{path}: {METADATA_ENTRY} is not acfd-deploy package metadata ({PT2_FORMAT}); export it again")
    return meta


def add_metadata(package: bytes, target: str | os.PathLike[str], metadata: Mapping[str, Any]) -> Path:
    """Write ``package`` (the bytes ``aoti_compile_and_package`` produced) to ``target``
    with ``metadata`` as :data:`METADATA_ENTRY` appended, atomically: the file either is
    the complete package or is not there."""
    buffer = io.BytesIO(package)
    with zipfile.ZipFile(buffer, "a") as archive:
        root = _root(archive.namelist())
        if root is None:
            raise ValueError("not a PyTorch 2 archive: no archive_format entry")
        body = json.dumps({"format": PT2_FORMAT, **metadata}, indent=2, sort_keys=True) + "\n"
        archive.writestr(f"{root}/{METADATA_ENTRY}", body)  # stored, like the package's own entries
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return Path(target)


def _base_version(version: str) -> str:
    return version.split("+", 1)[0]


def check_binding(meta: Mapping[str, Any], requested: str, torch_version: str, cpu_flags: set[str], cuda_available: bool) -> str:
    """The device kind (``cpu`` or ``cuda``) the package runs on here, for ``requested``
    (``auto``, ``cpu`` or ``cuda``); :class:`PackageMismatchError` unless it can: compiled
    for that kind (on a machine that has it), with a CPU instruction set this CPU has
    (AOTInductor compiles CPU code for one ISA: AVX-512 code on a CPU without it would
    kill the process), by this torch version (the library links against libtorch)."""
    built_for = str(meta.get("device", UNKNOWN))
    problems = []
    if built_for not in ("cpu", "cuda"):
        problems.append(f"compiled for an unknown device ({built_for})")
    elif built_for == "cuda" and not cuda_available:  # first: the registry turns auto into cpu here
        problems.append("compiled for cuda, but this machine has no CUDA device (torch sees none; CPU only)")
    elif requested not in ("auto", built_for):
        problems.append(f"compiled for {built_for}, but --device {requested} was asked for")
    needed = set(meta.get("cpu_flags") or [])
    if built_for == "cpu" and cpu_flags and not needed <= cpu_flags:
        problems.append(
            f"compiled for the CPU instruction set {meta.get('cpu_isa', UNKNOWN)} "
            f"(needs {', '.join(sorted(needed - cpu_flags))}, which this CPU lacks)"
        )
    built_torch = str(meta.get("torch_version", UNKNOWN))
    if built_torch == UNKNOWN or _base_version(built_torch) != _base_version(torch_version):
        problems.append(f"compiled by torch {built_torch}, this is torch {torch_version}")
    if problems:
        raise PackageMismatchError(
            f"AOTInductor package mismatch: {'; '.join(problems)}. A .pt2 is compiled code bound to its device, "
            "CPU instruction set and torch version: export it again with acfd-export --pt2 (--device cuda for a GPU)"
        )
    return built_for


def package_precision(path: str | os.PathLike[str]) -> str:
    """The precision the package's metadata records (``unknown`` where it is unreadable)."""
    try:
        value = str(read_metadata(path).get("precision", UNKNOWN))
    except AcfdError:
        return UNKNOWN
    return value if value in PRECISIONS else UNKNOWN


def package_device(path: str | os.PathLike[str]) -> str:
    """The device kind the package was compiled for (``unknown`` where unreadable)."""
    try:
        return str(read_metadata(path).get("device", UNKNOWN))
    except AcfdError:
        return UNKNOWN
