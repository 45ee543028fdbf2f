"""Training graph (eval) vs folded graph in PyTorch on this CPU, in the same run.

    python benchmarks/bench_reparam.py [--config acfd-vovnetv3-51] [--imgsz 640 640] [--repeats 7]

Both graphs are timed in turns (interleaved, so drift in clock speed or load hits both),
each turn the median of several forward passes after a warm-up; the figure is the median
over turns, reported as a ratio. Results go to benchmarks/results/reparam_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import acfd_deploy
from acfd_deploy.calibrate import smooth_random_images, well_conditioned
from acfd_deploy.cost import count_flops
from acfd_deploy.envinfo import environment
from acfd_deploy.fileio import atomic_path

RESULTS = Path(__file__).parent / "results"


@torch.inference_mode()
def time_once(model: torch.nn.Module, images: torch.Tensor, iters: int) -> float:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        model(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="acfd-vovnetv3-51")
    parser.add_argument("--imgsz", nargs=2, type=int, default=[640, 640], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved turns per graph (median reported)")
    parser.add_argument("--iters", type=int, default=3, help="forward passes per turn")
    parser.add_argument("--out", type=Path, default=RESULTS / "reparam_cpu")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    train = well_conditioned(acfd_deploy.build_model(args.config)).eval()
    folded = acfd_deploy.reparameterize(train)
    images = smooth_random_images(args.batch, *args.imgsz, seed=1)
    graphs = {"training graph (eval)": train, "folded graph": folded}
    for model in graphs.values():  # warm-up: allocator, oneDNN primitive caches
        time_once(model, images, 2)
    turns: dict[str, list[float]] = {name: [] for name in graphs}
    for turn in range(args.repeats):
        for name, model in graphs.items():
            turns[name].append(time_once(model, images, args.iters))
        print(f"turn {turn + 1}/{args.repeats}: " + ", ".join(f"{n} {t[-1] * 1e3:.1f} ms" for n, t in turns.items()), file=sys.stderr)

    h, w = args.imgsz
    rows = []
    base = statistics.median(turns["training graph (eval)"])
    for name, model in graphs.items():
        median = statistics.median(turns[name])
        rows.append(
            {
                "graph": name,
                "median_ms": round(median * 1e3, 2),
                "min_ms": round(min(turns[name]) * 1e3, 2),
                "speedup_vs_training_graph": round(base / median, 3),
                "gflops": round(count_flops(model, h, w, args.batch), 1),
            }
        )
    result = {
        "benchmark": "reparam",
        "config": args.config,
        "imgsz": [h, w],
        "batch": args.batch,
        "repeats": args.repeats,
        "iters_per_repeat": args.iters,
        "environment": environment(),
        "date": time.strftime("%Y-%m-%d"),
        "results": rows,
    }
    env = result["environment"]
    lines = [
        f"# Reparameterization speed-up, PyTorch on CPU ({args.config}, {h}x{w}, batch {args.batch})",
        "",
        f"Machine: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']} ({env['torch_threads']} threads), {result['date']}.",
        f"Median of {args.repeats} interleaved turns of {args.iters} forward passes each.",
        "",
        "| graph | GFLOPs | median ms | min ms | speed-up |",
        "|---|---:|---:|---:|---:|",
        *(f"| {r['graph']} | {r['gflops']} | {r['median_ms']} | {r['min_ms']} | {r['speedup_vs_training_graph']}x |" for r in rows),
        "",
        "Reproduce: `python benchmarks/bench_reparam.py`",
    ]
    with atomic_path(args.out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
