"""Whether a model file is one acfd-export verified: its entry in the ``export.json`` beside
it (:mod:`acfd_deploy.manifest`), and a sha256 that still matches.

acfd-serve says what it finds in one line at startup and, with ``--require-verified``,
refuses anything the manifest does not list as passed; the stock-repository writer refuses
an artifact that failed or changed after it was verified. One verdict per artifact, the one
acfd-export recorded (docs/design.md#verification-and-tolerances): nothing is re-judged here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import sha256_file
from acfd_deploy.manifest import MANIFEST_NAME, MANIFEST_VERSION, read_manifest
from acfd_deploy.runtime.registry import backend_for, is_url
from acfd_deploy.verify.rules import Outcome

PASSED = Outcome.PASSED.value  # listed, verdict pass, same sha256
FAILED = Outcome.FAILED.value  # listed, verdict fail
UNVERIFIED = Outcome.UNVERIFIED.value  # listed, verdict n/a: nothing could judge it
CHANGED = "changed"  # listed, but the file's sha256 is not the one recorded
UNLISTED = "unlisted"  # an export.json beside it that does not list it
OLD_MANIFEST = "old-manifest"  # an export.json of another manifest version (no verdicts to read)
NO_MANIFEST = "no-manifest"  # no export.json beside it (a checkpoint, the demo model, a copy)
REMOTE = "remote"  # a server URL: the artifact is on the server


@dataclass(frozen=True)
class Provenance:
    """What acfd-export's manifest says about one model reference."""

    reference: str
    state: str
    manifest: Path | None = None
    entry: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None  # of the file now (None where there was nothing to compare)

    @property
    def passed(self) -> bool:
        return self.state == PASSED

    @property
    def recorded_sha256(self) -> str | None:
        return self.entry.get("sha256")

    @property
    def verdict(self) -> dict[str, Any]:
        return self.entry.get("verdict") or {}

    def rule(self) -> str:
        rule = self.verdict.get("rule")
        return f"{rule} rule" if rule and rule != "none" else "no rule"

    def status(self) -> str:
        """What the manifest says, in words: ``verified by acfd-export: pass (tensor rule)``."""
        reason = str(self.verdict.get("reason") or "").strip()
        if self.state == PASSED:
            return f"verified by acfd-export: pass ({self.rule()})"
        if self.state == FAILED:
            return f"FAILED verification by acfd-export ({self.rule()}{': ' + reason if reason else ''}; see {self.manifest})"
        if self.state == UNVERIFIED:
            return f"not verified by acfd-export (n/a: {reason or 'no rule could judge it'})"
        if self.state == CHANGED:
            return f"NOT the file acfd-export verified: its sha256 differs from the one in {self.manifest}"
        if self.state == UNLISTED:
            return f"not verified: {self.manifest} does not list it"
        if self.state == OLD_MANIFEST:
            return f"not verified: {self.manifest} is not a version {MANIFEST_VERSION} manifest (an older acfd-export); export again"
        if self.state == REMOTE:
            return "on another server: not verified here"
        return f"not verified (no {MANIFEST_NAME} beside it: not an acfd-export artifact)"

    def describe(self) -> str:
        """The one line acfd-serve prints at startup: the model and its verdict."""
        return f"model: {self.reference}, {self.status()}"

    def require_passed(self) -> None:
        """An :class:`AcfdError` unless the manifest lists this very file as passed."""
        if not self.passed:
            raise AcfdError(
                f"--require-verified refuses {self.reference}: {self.status()}; "
                "serve an artifact that its export.json lists as passed, or leave out --require-verified"
            )


def _entry_for(manifest: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The manifest's entry for ``path``: the one its default backend runs with no runner
    options where the same file is listed more than once (OpenVINO options, say)."""
    entries = [a for a in manifest.get("artifacts", []) if isinstance(a, dict) and a.get("path") == path.name]
    if not entries:
        return None
    try:
        default = backend_for(path).name
    except AcfdError:
        default = None
    plain = [a for a in entries if a.get("backend") == default and not a.get("runner_options")]
    return (plain or entries)[0]


def provenance(reference: str | os.PathLike[str]) -> Provenance:
    """What the ``export.json`` beside ``reference`` says about it (hashing the file when
    the manifest lists it). A manifest that is there but unreadable is bad input."""
    if is_url(reference):
        return Provenance(str(reference), REMOTE)
    path = Path(reference)
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return Provenance(str(reference), NO_MANIFEST)
    manifest = read_manifest(path.parent)
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        return Provenance(str(reference), OLD_MANIFEST, manifest_path)
    entry = _entry_for(manifest, path)
    if entry is None:
        return Provenance(str(reference), UNLISTED, manifest_path)
    digest = sha256_file(path)
    if entry.get("sha256") != digest:
        return Provenance(str(reference), CHANGED, manifest_path, entry, digest)
    passed = entry.get("passed")
    state = PASSED if passed is True else FAILED if passed is False else UNVERIFIED
    return Provenance(str(reference), state, manifest_path, entry, digest)


def recorded_sha(artifact: Path) -> str | None:
    """The sha256 the ``export.json`` beside the artifact records for it (None where no
    manifest lists it); bad input if it lists it as failed, unverified or changed since."""
    found = provenance(artifact)
    if found.state in (FAILED, UNVERIFIED, OLD_MANIFEST):
        raise AcfdError(f"{artifact.name} is not put in a model repository: {found.status()}")
    if found.state == CHANGED:
        raise AcfdError(f"{artifact.name} does not match the sha256 in its export.json: it changed after it was verified")
    return found.recorded_sha256 if found.state == PASSED else None
