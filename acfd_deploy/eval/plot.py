"""The precision-recall curve as a PNG (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import os

from acfd_deploy.eval.metric import EvalResult
from acfd_deploy.fileio import atomic_path


def plot_pr(result: EvalResult, path: str | os.PathLike[str], title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    try:
        if len(result.curve_recall):
            ax.plot(result.curve_recall, result.curve_precision, lw=1.5, label=f"AP50 {result.ap:.4f}")
            ax.legend(loc="lower left")
        else:
            ax.text(0.5, 0.5, "no scored detections", ha="center", va="center")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(title or f"PR at IoU {result.iou_threshold:g} ({result.num_gt_boxes} faces)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
