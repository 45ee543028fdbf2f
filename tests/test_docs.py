"""What messages and documents point to exists: every ``docs/design.md#section`` cited in
code, scripts or docs is a heading of docs/design.md, no file cites a design document
users do not have, and the relative links of the Markdown files resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SOURCES = [
    *ROOT.glob("acfd_deploy/**/*.py"),
    *ROOT.glob("tests/*.py"),
    *ROOT.glob("benchmarks/**/*.py"),
    *ROOT.glob("benchmarks/**/*.sh"),
    *ROOT.glob("benchmarks/**/*.md"),
    *ROOT.glob("benchmarks/**/*.txt"),
    *ROOT.glob("scripts/*.sh"),
    *ROOT.glob("*.md"),
    *ROOT.glob("docs/*.md"),
    *ROOT.glob("models/*.md"),
    *ROOT.glob("acfd_deploy/assets/*.md"),
]
MARKDOWN = [p for p in SOURCES if p.suffix == ".md"]
# documents the project's authors had and users never see; spelled in pieces so that this
# file does not cite them itself
UNSEEN = ("DESIGN" + ".md", "../" + "shared")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors() -> set[str]:
    return {slug(line.lstrip("#")) for line in DESIGN.read_text().splitlines() if line.startswith("#")}


def test_slug_follows_github() -> None:
    assert slug("TensorRT 10 and 11") == "tensorrt-10-and-11"
    assert slug("What the paper leaves open") == "what-the-paper-leaves-open"


def test_every_cited_section_exists() -> None:
    known = anchors()
    cited = {
        (p.relative_to(ROOT), m) for p in SOURCES if p != Path(__file__) for m in re.findall(r"docs/design\.md#([\w-]+)", p.read_text())
    }
    assert cited, "no citation found: the pattern is broken"
    missing = sorted(f"{path}: #{anchor}" for path, anchor in cited if anchor not in known)
    assert not missing, missing


def test_no_file_cites_a_document_users_do_not_have() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES if any(name in p.read_text() for name in UNSEEN)]
    assert not offenders, offenders


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    broken = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert not broken, broken
