"""The decisions a CI job takes from benchmark results: within budget, no regression.

Pure functions on the JSON that ``acfd-bench --json`` writes, so they are tested on
made-up results. A regression compares like with like: the same artifact name, backend,
precision, batch and input, on the same machine class, and where both runs measured the
in-run reference workload, the latency *relative to that reference*, which cancels most
of a shared runner's speed drift (another tenant, clocks, thermals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acfd_deploy.errors import AcfdError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Finding:
    key: str
    ok: bool
    message: str


def result_key(row: dict[str, Any]) -> str:
    return f"{row['artifact']}|{row['backend']}|{row['precision']}|b{row['batch']}|{row['input']}"


def check_budget(rows: list[dict[str, Any]], budget_ms: float | None) -> list[Finding]:
    """Each row's per-image latency (for --ms-test: all scales added) against the budget."""
    if budget_ms is None:
        return []
    out = []
    for row in rows:
        ms = row["per_image_ms"]
        ok = ms <= budget_ms
        out.append(Finding(result_key(row), ok, f"{ms:.2f} ms per image {'<=' if ok else '>'} budget {budget_ms:g} ms"))
    return out


def check_baseline(current: dict[str, Any], baseline: dict[str, Any], max_regression: float) -> list[Finding]:
    """Regressions of ``current`` against ``baseline`` (both whole ``acfd-bench`` JSONs)."""
    if baseline.get("schema_version") != SCHEMA_VERSION:
        raise AcfdError(
            f"baseline has schema version {baseline.get('schema_version')!r}, this acfd-bench writes {SCHEMA_VERSION}; refresh the baseline"
        )
    if baseline.get("machine_class") != current.get("machine_class"):
        raise AcfdError(
            f"baseline was measured on {baseline.get('machine_class')!r}, this machine is {current.get('machine_class')!r}; "
            "compare only within one machine class"
        )
    if max_regression < 0:
        raise AcfdError(f"--max-regression must be >= 0, got {max_regression}")
    base_rows = {result_key(r): r for r in baseline.get("results", [])}
    ref_now, ref_then = current.get("reference_ms"), baseline.get("reference_ms")
    findings = []
    for row in current.get("results", []):
        key = result_key(row)
        before = base_rows.get(key)
        if before is None:
            findings.append(Finding(key, True, "not in the baseline (new)"))
            continue
        now, then = row["per_image_ms"], before["per_image_ms"]
        if ref_now and ref_then:
            change = (now / ref_now) / (then / ref_then) - 1
            basis = f"relative to the in-run reference ({ref_now:.3f} ms now, {ref_then:.3f} ms then)"
        else:
            change = now / then - 1
            basis = "absolute"
        ok = change <= max_regression
        findings.append(Finding(key, ok, f"{now:.3f} ms vs {then:.3f} ms per image: {change:+.1%} {basis}, limit +{max_regression:.0%}"))
        if before.get("parity_ok") is True and row.get("parity_ok") is False:
            findings.append(Finding(key, False, "parity passed in the baseline and fails now"))
    return findings
