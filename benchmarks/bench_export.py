"""CPU latency of every export artifact of the paper network, in one run.

    .venv/bin/python benchmarks/bench_export.py [--config acfd-vovnetv3-51] [--imgsz 640 640] [--repeats 7]

Exports the config (random weights made well-conditioned: latency does not depend on the
values) with ``acfd-export``'s own functions, then times, batch 1: the PyTorch training
graph (fp32), the PyTorch folded graph, and ONNX Runtime fp32, fp16 and int8 (CPU
provider). Runs are interleaved (one of each per round, so drift and other load hit every
artifact alike), the median of the rounds is reported, and every figure is also given as
a ratio to the training graph and to ONNX Runtime fp32 measured in the same run. Writes
``benchmarks/results/export_cpu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import acfd_deploy  # noqa: E402
from acfd_deploy.bench.timing import reference_workload  # noqa: E402
from acfd_deploy.calibrate import smooth_random_images, well_conditioned  # noqa: E402
from acfd_deploy.cost import count_flops  # noqa: E402
from acfd_deploy.envinfo import environment  # noqa: E402
from acfd_deploy.export.fp16 import convert_fp16  # noqa: E402
from acfd_deploy.export.int8 import load_calibration, quantize_int8  # noqa: E402
from acfd_deploy.export.onnx_export import export_onnx, save_onnx, simplify_if_equal  # noqa: E402
from acfd_deploy.resources import calibration_dir  # noqa: E402
from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner  # noqa: E402
from acfd_deploy.runtime.torch_runner import TorchRunner  # noqa: E402
from acfd_deploy.verify.inputs import parity_inputs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="acfd-vovnetv3-51")
    ap.add_argument("--imgsz", nargs=2, type=int, default=[640, 640])
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported); at least 5")
    ap.add_argument("--calib", type=Path, default=None, help="calibration images (default: the bundled ones)")
    ap.add_argument("--calib-limit", type=int, default=8, help="calibration images used (latency does not depend on it)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export_cpu")
    args = ap.parse_args()
    h, w = args.imgsz
    repeats = max(5, args.repeats)

    load_before = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = well_conditioned(acfd_deploy.build_model(args.config), seed=0).eval()
    folded = acfd_deploy.reparameterize(model)
    probe = smooth_random_images(1, 160, 224, seed=1).numpy()
    with tempfile.TemporaryDirectory(prefix="acfd-bench-") as tmp:
        proto, note = simplify_if_equal(export_onnx(folded), [probe])
        paths = {"fp32": save_onnx(proto, Path(tmp) / "m.onnx"), "fp16": save_onnx(convert_fp16(proto), Path(tmp) / "m.fp16.onnx")}
        q, report = quantize_int8(proto, load_calibration(args.calib or calibration_dir(), (h, w), 125, args.calib_limit))
        paths["int8"] = save_onnx(q, Path(tmp) / "m.int8.onnx")
        print(f"exported in {time.perf_counter() - t0:.0f} s ({note}; int8: {report})", flush=True)

        short = {"PyTorch training graph fp32": "train", "PyTorch folded graph fp32": "folded", "ONNX Runtime fp32": "ort-fp32",
                 "ONNX Runtime fp16": "ort-fp16", "ONNX Runtime int8": "ort-int8"}  # fmt: skip
        runners = {
            "PyTorch training graph fp32": TorchRunner(model),
            "PyTorch folded graph fp32": TorchRunner(folded),
            "ONNX Runtime fp32": OnnxRuntimeRunner(paths["fp32"]),
            "ONNX Runtime fp16": OnnxRuntimeRunner(paths["fp16"]),
            "ONNX Runtime int8": OnnxRuntimeRunner(paths["int8"]),
        }
        x = parity_inputs((h, w), 1, 1, seed=0)[0]
        for runner in runners.values():  # warm-up (allocations, kernel selection)
            runner.infer(x)
        times: dict[str, list[float]] = {name: [] for name in runners}
        matmul = [reference_workload(torch.device("cpu"), size=2048)]  # before and after the rounds
        for r in range(repeats):
            for name, runner in runners.items():
                t = time.perf_counter()
                runner.infer(x)
                times[name].append(time.perf_counter() - t)
            print(f"round {r + 1}/{repeats}: " + ", ".join(f"{short[n]} {times[n][-1] * 1e3:.0f} ms" for n in runners), flush=True)
        matmul.append(reference_workload(torch.device("cpu"), size=2048))

    med = {n: statistics.median(v) for n, v in times.items()}
    train, ort32 = med["PyTorch training graph fp32"], med["ONNX Runtime fp32"]
    env = environment()
    # compute efficiency: the folded network's GFLOP/s in ONNX Runtime fp32 over a large
    # fp32 matrix product's GFLOP/s on the same cores, measured in the same run
    gflops = count_flops(folded, h, w)
    matmul_gflops = statistics.median(g for _, g in matmul)
    efficiency = gflops / ort32 / matmul_gflops
    result = {
        "what": f"{args.config}, {h}x{w}, batch 1, CPU, median of {repeats} interleaved rounds",
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "load_average_1_5_15min": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]},
        "median_ms": {n: round(v * 1e3, 1) for n, v in med.items()},
        "speedup_vs_training_graph": {n: round(train / v, 2) for n, v in med.items()},
        "speedup_vs_onnxruntime_fp32": {n: round(ort32 / v, 2) for n, v in med.items()},
        "all_ms": {n: [round(t * 1e3, 1) for t in v] for n, v in times.items()},
        "int8": report,
        "compute_efficiency": {
            "network_gflops_per_image": round(gflops, 1),
            "onnxruntime_fp32_gflops_per_s": round(gflops / ort32, 1),
            "matmul_fp32_gflops_per_s": round(matmul_gflops, 1),
            "matmul": "torch.mm 2048x2048x2048 fp32, median of runs before and after the rounds",
            "efficiency": round(efficiency, 3),
        },
        "expectations": {
            "onnxruntime_fp32_vs_training_graph": ">= 1.6x",
            "onnxruntime_int8_vs_fp32": ">= 2.5x",
            "folded_vs_training_graph": ">= 1.6x",
            "onnxruntime_fp32_efficiency": ">= 0.70",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# acfd-export artifacts on CPU: {args.config}, {h}x{w}, batch 1",
        "",
        f"CPU: {env['cpu']} ({env['cpu_count']} cores, torch threads {env['torch_threads']}); "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}. Median of {repeats} interleaved rounds, "
        f"measured {result['measured_at']}; load average (1 min) {load_before[0]} before, "
        f"{result['load_average_1_5_15min']['after'][0]} after.",
        "",
        "| Artifact | Median latency | vs training graph | vs ONNX Runtime fp32 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for n, v in med.items():
        lines.append(f"| {n} | {v * 1e3:.0f} ms | {train / v:.2f}x | {ort32 / v:.2f}x |")
    lines += [
        "",
        f"Compute efficiency of ONNX Runtime fp32: {gflops:.1f} GFLOP per image / {ort32 * 1e3:.0f} ms = {gflops / ort32:.1f} GFLOP/s, "
        f"against {matmul_gflops:.1f} GFLOP/s for a 2048^3 fp32 matrix product on the same cores in the same run: {efficiency:.0%}.",
    ]
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/bench_export.py`. Not a timed test: figures vary with machine and load.", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
