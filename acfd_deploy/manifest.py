"""``export.json``, the manifest of an acfd-export folder: what it holds, how each artifact was judged, and with what.

The manifest is the folder's table of contents: every artifact's file name, size and
sha256, so :func:`check_folder` can tell a complete export from a damaged one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from acfd_deploy.envinfo import library_versions
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path, sha256_file
from acfd_deploy.verify.rules import overall

MANIFEST_NAME = "export.json"
MANIFEST_VERSION = 2


__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "artifact_entry", "check_folder", "overall", "read_manifest", "versions", "write_manifest"]


def artifact_entry(artifact: Any) -> dict[str, Any]:
    """One artifact (an :class:`acfd_deploy.export.steps.Artifact`) as the manifest lists it."""
    verdict = artifact.verdict.to_dict() if artifact.verdict is not None else None
    return {
        "name": artifact.name,
        "kind": artifact.kind,
        "backend": artifact.backend,
        "precision": artifact.precision,
        "path": artifact.path.name,
        "files": [{"path": f.name, "size": f.stat().st_size, "sha256": sha256_file(f)} for f in artifact.files],
        "size": artifact.size(),
        "sha256": sha256_file(artifact.path),
        "passed": verdict["passed"] if verdict else None,
        **({"runner_options": artifact.runner_options} if artifact.runner_options else {}),
        "verdict": verdict,
        **({"details": artifact.details} if artifact.details else {}),
    }


def versions() -> dict[str, Any]:
    from acfd_deploy import __version__

    return {"acfd_deploy": __version__, **library_versions()}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return path


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an export folder; bad input if there is none or it is not one."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise AcfdError(f"{folder} has no {MANIFEST_NAME} (is it an acfd-export output folder?)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AcfdError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise AcfdError(f"{path} is not an acfd-export manifest (no artifact list)")
    return manifest


def check_folder(folder: str | os.PathLike[str]) -> list[str]:
    """What is wrong with an export folder against its manifest: listed files missing or
    changed (size, sha256), files present that the manifest does not list. Empty when
    the folder is exactly what its manifest says."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems: list[str] = []
    listed = {MANIFEST_NAME}
    for artifact in manifest["artifacts"]:
        for entry in artifact.get("files") or [{"path": artifact["path"], "size": artifact.get("size"), "sha256": artifact.get("sha256")}]:
            listed.add(entry["path"])
            path = folder / entry["path"]
            if not path.is_file():
                problems.append(f"{entry['path']}: listed but missing")
            elif path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
                problems.append(f"{entry['path']}: differs from the manifest (size or sha256)")
    problems += [f"{p.name}: present but not listed" for p in sorted(folder.iterdir()) if p.name not in listed]
    return problems
