"""The export's table and the lines under it: what a user reads at the end of acfd-export."""

from __future__ import annotations

from typing import Any

from acfd_deploy.verify.rules import Status

# a verdict in the table: pass and fail in capitals, so they stand out
RESULT = {Status.PASS.value: "PASS", Status.FAIL.value: "FAIL", Status.UNVERIFIED.value: Status.UNVERIFIED.value}


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _need(verdict: dict[str, Any]) -> str:
    required = verdict.get("required", {})
    rule = verdict.get("rule")
    if rule == "tensor":
        return f"err<={required['score_abs']:.0e}"
    if rule == "ap":
        return f"AP drop<={required['max_ap_drop']:.2f}"
    if rule == "detection":
        return f"match>={required['match_rate']:.0%}"
    if rule == "scores":
        return f"score err<={required['score_abs']:g}"
    if rule == "end2end":
        return f"all, IoU>={required['iou']:g}, score err<={required['score_diff']:g}"
    return "-"


def _match(verdict: dict[str, Any]) -> str:
    match = verdict["match"]
    if not match["reference"]:
        return "none to match"
    return f"{match['rate']:.2%} of {match['reference']}"


def format_table(artifacts: list[dict[str, Any]], reference_ap: float | None = None) -> str:
    """An aligned table of the manifest's artifacts: file, precision, size, errors, the rule
    that decided and its result (PASS, FAIL, or n/a where nothing could judge)."""
    header = ("Artifact", "File", "Precision", "Size", "Score err", "Box err", "Det. match", "AP50", "Rule", "Need", "Result")
    rows = [header]
    for a in artifacts:
        v = a["verdict"]
        ap = v.get("ap")
        if ap is None and a["kind"] == "torch" and reference_ap is not None:
            ap = reference_ap  # the AP int8 is held to is the folded graph's
        rows.append(
            (
                a["name"],
                a["path"],
                a["precision"],
                human_size(a["size"]),
                f"{v['score_abs']:.1e}",
                f"{v['box_rel']:.1e}",
                _match(v),
                "-" if ap is None else f"{ap:.3f}",
                v["rule"] if v["rule"] != "none" else "-",
                _need(v),
                RESULT[v["status"]],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(wd) for cell, wd in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """How to read the table, which rule judged what and why, and where everything is."""
    parity = manifest["parity_images"]
    shapes = ", ".join("x".join(map(str, s)) for s in parity["batches"])
    lines = [
        f"Reference: {parity['reference']}, on {len(parity['batches'])} batches of {parity['source']}: {shapes}",
        "Score err: max |score - reference|; Box err: max |box - reference| / max(largest |coordinate| of the box, 1); "
        "Det. match: reference detections (score >= 0.3) found again at the same anchor with IoU >= 0.9 and |score diff| <= 0.02",
    ]
    if any((a.get("details") or {}).get("end2end") for a in manifest["artifacts"]):
        lines.append(
            "e2e artifacts are judged on final detections against the PyTorch pipeline at their own scales "
            "(Score/Box err: over matched detections; fp32: every detection >= 0.3 at IoU >= 0.99, score within 1e-3, none extra)"
        )
    note = manifest["weights"].get("note")
    if note:
        lines.append(f"Weights: {note}")
    for a in manifest["artifacts"]:
        v = a["verdict"]
        if v["rule"] == "ap":
            lines.append(
                f"{a['name']} is judged by AP50 (docs/design.md#verification-and-tolerances: drop <= 1 point against the PyTorch model's "
                f"{v['reference_ap']:.3f}) on {v['validation']}"
            )
        elif v["status"] == Status.UNVERIFIED.value:
            lines.append(f"{a['name']}: n/a, not verified ({v['reason']})")
        elif v["reason"]:
            lines.append(f"{a['name']} is judged by the {v['rule']} rule: {v['reason']}")
    lines.append(manifest["notes"]["tensorrt"])
    return lines
