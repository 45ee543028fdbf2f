"""Training curves from ``log.csv`` as a PNG: what a run did is easier seen than read.

Three panels over epochs: the losses (total, classification, regression), validation
AP50, and how many anchors DAM matched and compensated per batch (the compensated count
grows as regression improves, and with it the loss: a rising loss here is not divergence).
"""

from __future__ import annotations

import csv
import math
import os

from acfd_deploy.fileio import atomic_path


def read_log(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a trainer log as floats (missing or empty cells become NaN)."""

    def num(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    with open(path, newline="") as fh:
        return [{k: num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def plot_history(rows: list[dict[str, float]], path: str | os.PathLike[str], title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_ap, ax_dam) = plt.subplots(1, 3, figsize=(12, 3.6), dpi=100)
    try:
        for key in ("loss", "cls", "reg"):
            ax_loss.plot(epochs, [r.get(key, math.nan) for r in rows], marker=".", label=key)
        ax_loss.set_title("training loss (epoch mean)")
        ax_loss.legend()
        aps = [r.get("val_ap", math.nan) for r in rows]
        ax_ap.plot(epochs, aps, marker=".", color="tab:green")
        finite = [a for a in aps if not math.isnan(a)]
        if finite:
            best = max(finite)
            ax_ap.axhline(best, color="tab:green", lw=0.8, ls="--", label=f"best {best:.3f}")
            ax_ap.legend(loc="lower right")
        ax_ap.set_ylim(0, 1)
        ax_ap.set_title("validation AP50")
        for key, label in (("matched", "matched (IoU >= 0.35)"), ("compensated", "compensated (DAM step 2)")):
            ax_dam.plot(epochs, [r.get(key, math.nan) for r in rows], marker=".", label=label)
        ax_dam.set_title("positive anchors per batch")
        ax_dam.legend()
        for ax in (ax_loss, ax_ap, ax_dam):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
