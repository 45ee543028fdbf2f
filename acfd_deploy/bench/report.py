"""Presenting results: the terminal table, the JSON document and the latency plot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from acfd_deploy.fileio import atomic_path
from acfd_deploy.runtime.registry import backends
from acfd_deploy.verify.rules import Status


def _word(status: Status) -> str:
    """A verdict in the table: a failure in capitals, so it stands out."""
    return status.value.upper() if status is Status.FAIL else status.value


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def speedups(rows: list[dict[str, Any]]) -> list[float | None]:
    """Each row's speed against the baseline backend's fp32 row (the registry's
    ``baseline`` role: ONNX Runtime, the figure CPU deployment is judged by) at the same
    batch and input, measured in the same run; None where there is no such row."""
    roles = {b.name for b in backends() if b.baseline}
    base = {(r["batch"], r["input"]): r["per_image_ms"] for r in rows if r["backend"] in roles and r["precision"] == "fp32"}
    return [base[(r["batch"], r["input"])] / r["per_image_ms"] if (r["batch"], r["input"]) in base else None for r in rows]


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per artifact and batch, like Ultralytics' benchmark table; ``vs ORT fp32``
    where the run measured ONNX Runtime fp32 too."""
    headers = ["artifact", "backend", "precision", "size MB", "batch", "input", "p50 ms", "p99 ms", "ms/img", "img/s", "vs ORT fp32"]
    headers += ["parity", "budget"]
    lines = []
    for r, ratio in zip(rows, speedups(rows)):
        parity = r.get("parity")
        parity_text = "-" if parity is None else _word(Status.of(parity["passed"]))
        budget = r.get("budget_ok")
        budget_text = "-" if budget is None else _word(Status.of(budget))
        lines.append(
            [
                r["artifact"],
                r["backend"],
                r["precision"],
                _fmt(r.get("size_mb"), ".1f"),
                str(r["batch"]),
                r["input"],
                _fmt(r["p50_ms"], ".2f"),
                _fmt(r["p99_ms"], ".2f"),
                _fmt(r["per_image_ms"], ".2f"),
                _fmt(r["images_per_second"], ".1f"),
                "-" if ratio is None else f"{ratio:.2f}x",
                parity_text,
                budget_text,
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    right = {3, 4, 6, 7, 8, 9, 10}

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([render(headers), "  ".join("-" * w for w in widths), *(render(line) for line in lines)])


def write_json(document: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")


def plot_latency(rows: list[dict[str, Any]], path: str | os.PathLike[str], budget_ms: float | None = None) -> None:
    """Per-image latency against batch size, one line per artifact (log-scale batch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    by_artifact: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        by_artifact.setdefault(f"{r['artifact']} [{r['backend']} {r['precision']}]", []).append((r["batch"], r["per_image_ms"]))
    for label, points in by_artifact.items():
        points.sort()
        ax.plot([b for b, _ in points], [ms for _, ms in points], marker="o", label=label)
    if budget_ms is not None:
        ax.axhline(budget_ms, color="red", linestyle="--", linewidth=1, label=f"budget {budget_ms:g} ms")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency per image (ms, median)")
    ax.set_title(rows[0]["input"] if rows else "")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
