"""acfd-bench: batched latency, the 50 ms budget, parity, and a regression gate.

acfd-bench --model out/acfd.onnx out/acfd.int8.onnx --batch 1,8 --imgsz 640 640
acfd-bench --export-dir out --ms-test --batch 1,8,16,32 --budget-ms 50 --parity
acfd-bench --export-dir out --json now.json --baseline benchmarks/baselines/gpu-h100.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acfd_deploy.bench.gate import SCHEMA_VERSION, check_baseline, check_budget
from acfd_deploy.bench.harness import BenchPlan, bench_target, parity_row
from acfd_deploy.bench.report import format_table, plot_latency, write_json
from acfd_deploy.bench.targets import Target, TorchOptions, targets_for_export_dir, targets_for_path
from acfd_deploy.bench.timing import TimingPolicy, reference_workload
from acfd_deploy.cli.common import EXIT_CHECK_FAILED, EXIT_OK, make_parser, positive_int, run
from acfd_deploy.errors import AcfdError

PROG = "acfd-bench"


def batch_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of batch sizes like 1,8,16, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(PROG, "Measure latency per image of ACFD artifacts; check the budget, parity and regressions.")
    p.add_argument(
        "--model",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="artifacts: .pth/.pt/.safetensors (training and folded graph), .onnx, .plan",
    )
    p.add_argument("--export-dir", type=Path, help="benchmark everything acfd-export wrote there (and its source weights)")
    p.add_argument("--backend", choices=["torch", "onnxruntime", "tensorrt"], help="only artifacts of this backend")
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        help="only this precision; fp16 also runs PyTorch checkpoints in half precision (CUDA)",
    )
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="where PyTorch and ONNX Runtime run (auto: cuda if present)"
    )
    p.add_argument("--batch", type=batch_list, default=(1,), help="batch sizes, comma-separated")
    p.add_argument(
        "--imgsz", type=positive_int, nargs=2, default=[640, 640], metavar=("H", "W"), help="network input size (without --ms-test)"
    )
    p.add_argument("--ms-test", action="store_true", help="the paper's whole per-image path: decode, 3 test scales, inference, merge + NMS")
    p.add_argument("--source", default="1920x1080", help="--ms-test input: an image file or WIDTHxHEIGHT of a synthetic scene")
    p.add_argument("--budget-ms", type=float, help="per-image budget; default 50 (the challenge's) with --ms-test, none otherwise")
    p.add_argument("--parity", action="store_true", help="compare each artifact with the PyTorch training graph (needs the weights)")
    p.add_argument("--weights", type=Path, help="training checkpoint for --parity when it is not among --model / export.json")
    p.add_argument("--repeats", type=positive_int, default=3, help="independent timing runs per artifact and batch (median reported)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per repeat (at least 5 calls)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before each repeat")
    p.add_argument("--cuda-graphs", action="store_true", help="also time the folded PyTorch graph replayed as CUDA graphs")
    p.add_argument("--compile", action="store_true", help="also time the folded PyTorch graph under torch.compile")
    p.add_argument("--json", type=Path, help="write results and environment here")
    p.add_argument("--plot", type=Path, help="write a PNG of latency per image against batch size")
    p.add_argument("--baseline", type=Path, help="an earlier --json from the same machine class to compare with")
    p.add_argument("--max-regression", type=float, default=0.10, help="allowed slow-down against --baseline (0.10 = 10%%)")
    p.add_argument("--machine-class", help="name of this machine class in the JSON (default: GPU name, or CPU model and cores)")
    return p


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise AcfdError("--device cuda, but torch sees no CUDA device")
    return choice


def machine_class(env: dict[str, Any]) -> str:
    if env.get("gpu"):
        return f"gpu:{env['gpu']}"
    return f"cpu:{env['cpu']}:{env['cpu_count']}"


def _collect_targets(args: argparse.Namespace, opts: TorchOptions) -> tuple[list[Target], Path | None]:
    targets: list[Target] = []
    reference = args.weights
    if args.export_dir:
        found, ref = targets_for_export_dir(args.export_dir, opts)
        targets += found
        reference = reference or ref
    for path in args.model:
        targets += targets_for_path(path, opts)
        if reference is None and path.suffix in (".pth", ".safetensors") and any("training graph" in t.artifact for t in targets):
            reference = path
    if args.backend:
        targets = [t for t in targets if t.backend == args.backend]
    if args.precision:
        targets = [t for t in targets if t.precision == args.precision]
    if not targets:
        raise AcfdError(
            "nothing to benchmark: give --model PATH... or --export-dir DIR (after --backend/--precision filters, none is left)"
        )
    return targets, reference


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.envinfo import environment

    if args.min_time < 0 or args.warmup < 0:
        raise AcfdError("--min-time and --warmup must not be negative")
    device = _device(args.device)
    torch_precision = "fp16" if args.precision == "fp16" else "fp32"
    opts = TorchOptions(device=device, precision=torch_precision, cuda_graphs=args.cuda_graphs, compile=args.compile)
    if args.cuda_graphs and device != "cuda":
        raise AcfdError("--cuda-graphs needs a CUDA device")
    baseline = _read_baseline(args.baseline) if args.baseline else None
    targets, reference_path = _collect_targets(args, opts)
    budget = args.budget_ms if args.budget_ms is not None else (50.0 if args.ms_test else None)
    plan = BenchPlan(
        batches=args.batch,
        imgsz=tuple(args.imgsz),
        ms_test=args.ms_test,
        source=args.source,
        repeats=args.repeats,
        policy=TimingPolicy(warmup=args.warmup, min_seconds=args.min_time),
        device=device,
    )
    env = environment()
    import torch

    ref_ms, ref_gflops = reference_workload(torch.device(device))
    reference_runner = None
    if args.parity:
        if reference_path is None:
            raise AcfdError("--parity needs the training checkpoint: pass --weights PATH or a .pth among --model")
        from acfd_deploy import load_model
        from acfd_deploy.runtime.torch_runner import TorchRunner

        reference_runner = TorchRunner(load_model(reference_path), "cpu", "fp32", "reference")
    rows: list[dict[str, Any]] = []
    for target in _progress(targets):
        runner = target.make_runner()
        target_rows = bench_target(target, plan, runner)
        if reference_runner is not None:
            parity = parity_row(target, runner, reference_runner, plan.imgsz)
            for row in target_rows:
                row["parity"], row["parity_ok"] = parity, parity["passed"]
        _add_efficiency(target, target_rows, plan, ref_gflops)
        rows += target_rows
    for finding in check_budget(rows, budget):
        next(r for r in rows if r is not None and _key(r) == finding.key)["budget_ok"] = finding.ok
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": "acfd-bench",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine_class": args.machine_class or machine_class(env),
        "environment": env,
        "reference_ms": round(ref_ms, 4),
        "reference_gflops": round(ref_gflops, 1),
        "budget_ms": budget,
        "plan": {
            "batches": list(plan.batches),
            "input": plan.input_label,
            "repeats": plan.repeats,
            "min_time_s": args.min_time,
            "warmup": args.warmup,
        },
        "results": rows,
    }
    print(format_table(rows))
    print(f"machine: {document['machine_class']}; reference matmul {ref_ms:.2f} ms ({ref_gflops:.0f} GFLOP/s)")
    failed = [f"{_key(r)}: over budget ({r['per_image_ms']:.2f} ms > {budget:g} ms)" for r in rows if r.get("budget_ok") is False]
    failed += [f"{_key(r)}: parity failed" for r in rows if r.get("parity_ok") is False and r["batch"] == plan.batches[0]]
    if baseline is not None:
        findings = check_baseline(document, baseline, args.max_regression)
        document["baseline"] = {"path": str(args.baseline), "findings": [f.__dict__ for f in findings]}
        for f in findings:
            print(f"baseline {'ok  ' if f.ok else 'FAIL'} {f.key}: {f.message}")
        failed += [f"{f.key}: {f.message}" for f in findings if not f.ok]
    if args.json:
        write_json(document, args.json)
    if args.plot:
        plot_latency(rows, args.plot, budget)
    for line in failed:
        print(f"{PROG}: FAILED {line}")
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _key(row: dict[str, Any]) -> str:
    from acfd_deploy.bench.gate import result_key

    return result_key(row)


def _progress(targets: list[Target]) -> Any:
    from tqdm import tqdm

    return tqdm(targets, desc="benchmark", unit="artifact", disable=None, leave=False)


def _add_efficiency(target: Target, rows: list[dict[str, Any]], plan: BenchPlan, reference_gflops: float) -> None:
    """Network GFLOP/s achieved, and as a fraction of the in-run matrix-product GFLOP/s."""
    if plan.ms_test:
        return
    from acfd_deploy.cost import count_flops

    gflops = _network_gflops(target, plan.imgsz, count_flops)
    if gflops is None:
        return
    for row in rows:
        achieved = gflops * row["batch"] / (row["p50_ms"] / 1e3)
        row["gflops_per_image"] = round(gflops, 2)
        row["achieved_gflops"] = round(achieved, 1)
        row["efficiency_vs_matmul"] = round(achieved / reference_gflops, 3)


_FLOPS_CACHE: dict[tuple[str, int, int], float] = {}


def _network_gflops(target: Target, imgsz: tuple[int, int], count_flops: Any) -> float | None:
    """The folded graph's GFLOPs (what an optimized artifact computes) for its config."""
    config = _stored_config(target.path) if target.path is not None else None
    if config is None:
        return None
    from acfd_deploy import build_model, reparameterize
    from acfd_deploy.configs import resolve_config

    key = (json.dumps(config, sort_keys=True), *imgsz)
    if key not in _FLOPS_CACHE:
        _FLOPS_CACHE[key] = count_flops(reparameterize(build_model(resolve_config(config))), *imgsz)
    return _FLOPS_CACHE[key]


def _stored_config(path: Path) -> str | dict[str, Any] | None:
    """The model config an artifact carries (ONNX metadata, checkpoint), if any."""
    if path.suffix == ".onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(meta["config"]) if "config" in meta else meta.get("config_name")
    from acfd_deploy.checkpoint import CHECKPOINT_SUFFIXES, read_checkpoint

    if path.suffix in CHECKPOINT_SUFFIXES:
        return read_checkpoint(path).config
    return None


def _read_baseline(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AcfdError(f"baseline not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AcfdError(f"baseline {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "results" not in data:
        raise AcfdError(f"baseline {path} is not an acfd-bench JSON (no 'results')")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _body, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
