"""Statistics of latency samples. Percentiles use linear interpolation (numpy's default),
so p50 of an even count is the mean of the middle two, as every other tool reports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per call of one timed workload, and what they mean per image."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    batch: int

    @property
    def per_image(self) -> float:
        return self.p50 / self.batch

    @property
    def images_per_second(self) -> float:
        return self.batch / self.p50 if self.p50 > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        ms = {f"{k}_ms": round(v * 1e3, 4) for k, v in asdict(self).items() if k not in ("count", "batch")}
        return {
            "count": self.count,
            "batch": self.batch,
            **ms,
            "per_image_ms": round(self.per_image * 1e3, 4),
            "images_per_second": round(self.images_per_second, 3),
        }


def summarize(samples: list[float] | np.ndarray, batch: int = 1) -> LatencyStats:
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no timing samples")
    if (x < 0).any() or not np.isfinite(x).all():
        raise ValueError("timing samples must be finite and non-negative")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return LatencyStats(int(x.size), float(x.mean()), float(x.std()), float(x.min()), float(p50), float(p90), float(p99), batch)


def median_of_repeats(per_image_ms: list[float]) -> float:
    """The figure a gate compares: the median over repeats of each repeat's median, which
    one slow repeat (another job on the machine) cannot move."""
    if not per_image_ms:
        raise ValueError("no repeats")
    return float(np.median(np.asarray(per_image_ms, dtype=np.float64)))
