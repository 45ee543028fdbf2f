"""OpenVINO's performance counters, summarized: where an int8 model still spends time in
fp32, and on what (the evidence behind the int8 Q/DQ placement for OpenVINO)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LayerTime:
    """One executed layer from OpenVINO's performance counters."""

    name: str
    node_type: str  # OpenVINO op (Convolution, Concat, FakeQuantize, ...)
    exec_type: str  # kernel (brgconv_avx512_core_vnni_I8, jit_avx512_f32, ...)
    ms: float

    @property
    def precision(self) -> str:
        """The kernel's precision, from the suffix of its name (``..._I8``, ``..._f32``)."""
        tail = self.exec_type.rsplit("_", 1)[-1].lower()
        return {"i8": "int8", "u8": "int8", "f32": "fp32", "bf16": "bf16", "f16": "fp16", "i32": "int32", "i64": "int64"}.get(tail, tail)


def layer_breakdown(layers: list[LayerTime]) -> dict[str, Any]:
    """Time by kernel precision and by (op type, precision), largest first: where an int8
    model still spends time in fp32, and on what."""
    total = sum(layer.ms for layer in layers) or 1.0
    by_precision: dict[str, float] = defaultdict(float)
    by_type: dict[tuple[str, str], float] = defaultdict(float)
    count: Counter[tuple[str, str]] = Counter()
    for layer in layers:
        by_precision[layer.precision] += layer.ms
        by_type[(layer.node_type, layer.precision)] += layer.ms
        count[(layer.node_type, layer.precision)] += 1
    return {
        "total_ms": round(total, 2),
        "by_precision": {
            k: {"ms": round(v, 2), "share": round(v / total, 3)} for k, v in sorted(by_precision.items(), key=lambda kv: -kv[1])
        },
        "by_type": [
            {"type": t, "precision": p, "layers": count[(t, p)], "ms": round(v, 2), "share": round(v / total, 3)}
            for (t, p), v in sorted(by_type.items(), key=lambda kv: -kv[1])
        ],
    }


def format_breakdown(breakdown: dict[str, Any], top: int = 15) -> str:
    lines = [f"total {breakdown['total_ms']:.1f} ms (sum of layer times)"]
    lines.append(
        "by kernel precision: " + ", ".join(f"{k} {v['ms']:.1f} ms ({v['share']:.0%})" for k, v in breakdown["by_precision"].items())
    )
    lines.append(f"{'op type':<22} {'precision':<9} {'layers':>6} {'ms':>8} {'share':>6}")
    for row in breakdown["by_type"][:top]:
        lines.append(f"{row['type']:<22} {row['precision']:<9} {row['layers']:>6} {row['ms']:>8.2f} {row['share']:>6.1%}")
    return "\n".join(lines)
