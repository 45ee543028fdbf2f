"""acfd-bench as a library call: collect the targets, time them, judge them, gate them.

:func:`run_bench` returns the JSON document (``schema_version``, machine class,
environment, one row per artifact and batch) and the list of failed checks; the command
prints and writes it."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from acfd_deploy import load_model
from acfd_deploy.bench.flops import add_efficiency, network_gflops
from acfd_deploy.bench.gate import SCHEMA_VERSION, check_baseline, check_budget, result_key
from acfd_deploy.bench.harness import (
    BenchPlan,
    bench_target,
    parity_row,
    parity_verifier,
    result_row,
    schedule,
    time_repeat,
    workloads,
)
from acfd_deploy.bench.targets import Target, TorchOptions, targets_for, targets_for_export_dir
from acfd_deploy.bench.timing import TimingPolicy, reference_workload
from acfd_deploy.envinfo import environment
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import cuda_status, parse_device, resolve_device
from acfd_deploy.runtime.registry import Backend, backend_for, backends
from acfd_deploy.runtime.torch_runner import TorchRunner


@dataclass
class BenchOptions:
    models: list[str] = field(default_factory=list)
    export_dir: Path | None = None
    backend: str | None = None
    precision: str | None = None
    device: str = "auto"
    batches: tuple[int, ...] = (1,)
    imgsz: tuple[int, int] = (640, 640)
    ms_test: bool = False
    source: str = "1920x1080"
    budget_ms: float | None = None
    parity: bool = False
    weights: Path | None = None
    repeats: int = 3
    interleave: bool = False
    min_time: float = 1.0
    warmup: int = 3
    cuda_graphs: bool = False
    compile: bool = False
    baseline: Path | None = None
    max_regression: float = 0.10
    machine_class: str | None = None
    progress: bool = True


def machine_class(env: dict[str, Any]) -> str:
    if env.get("gpu"):
        return f"gpu:{env['gpu']}"
    return f"cpu:{env['cpu']}:{env['cpu_count']}"


def read_baseline(path: Path) -> dict[str, Any]:
    require_file(path, "baseline")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AcfdError(f"baseline {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "results" not in data:
        raise AcfdError(f"baseline {path} is not an acfd-bench JSON (no 'results')")
    return data


def collect_targets(opts: BenchOptions, torch_opts: TorchOptions) -> tuple[list[Target], Path | None]:
    """The targets to measure (after the --backend / --precision filters) and the training
    checkpoint that --parity compares with."""
    targets: list[Target] = []
    reference = opts.weights
    if opts.export_dir:
        found, ref = targets_for_export_dir(opts.export_dir, torch_opts)
        targets += found
        reference = reference or ref
    for model in opts.models:
        chosen = _backend_for(model, opts.backend)
        # a precision the backend runs any of its artifacts at (OpenVINO's bf16 on an fp32 IR)
        at_runtime = chosen is not None and opts.precision in chosen.runtime_precisions
        options: dict[str, object] | None = {"precision": opts.precision} if at_runtime else None
        new = targets_for(model, torch_opts, chosen.name if chosen else None, options)
        targets += new
        if reference is None and any(t.training_graph for t in new):
            reference = Path(model)
    if opts.backend:
        targets = [t for t in targets if t.backend == opts.backend]
    if opts.precision:
        targets = [t for t in targets if t.precision == opts.precision]
    if not targets:
        raise AcfdError(
            "nothing to benchmark: give --model PATH... or --export-dir DIR (after --backend/--precision filters, none is left)"
        )
    return targets, reference


def _backend_for(model: str, wanted: str | None) -> Backend | None:
    """The backend that runs ``model``: ``--backend`` where it can (OpenVINO also reads
    .onnx), else the model's default (the filter then decides); None for a reference no
    backend takes (:func:`targets_for` says why)."""
    for name in dict.fromkeys((wanted, None)):
        try:
            return backend_for(model, name)
        except AcfdError:
            pass
    return None


def _progress(items: Any, enabled: bool, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc="benchmark", unit=unit, disable=None if enabled else True, leave=False)


def _runs(targets: list[Target], plan: BenchPlan) -> list[tuple[Target, BenchPlan]]:
    """One ``(target, plan)`` per runner to load: a target whose runner is set up per batch
    size (:attr:`Target.per_batch`) once per batch, the others once for all batches."""
    runs: list[tuple[Target, BenchPlan]] = []
    for target in targets:
        if target.per_batch and len(plan.batches) > 1:
            runs += [(target, replace(plan, batches=(batch,))) for batch in plan.batches]
        else:
            runs.append((target, plan))
    return runs


def _time_targets(targets: list[Target], plan: BenchPlan, interleave: bool, progress: bool, finish: Any) -> list[dict[str, Any]]:
    """Time every target and hand each, with its runner and rows, to ``finish`` (parity,
    efficiency). Sequential holds one runner at a time; interleaved holds them all and
    times them in rounds (:func:`~acfd_deploy.bench.harness.schedule`). Every runner is
    closed once its rows are done, whatever happens."""
    rows: list[dict[str, Any]] = []
    runs = _runs(targets, plan)
    if not interleave:
        for target, run_plan in _progress(runs, progress, "artifact"):
            with target.make_runner(max(run_plan.batches)) as runner:
                rows += finish(target, runner, bench_target(target, run_plan, runner))
        return rows
    with contextlib.ExitStack() as stack:
        runners = [stack.enter_context(target.make_runner(max(run_plan.batches))) for target, run_plan in runs]
        works = [workloads(target, run_plan, runner) for (target, run_plan), runner in zip(runs, runners)]
        flat = [work for target_works in works for work in target_works]
        for w, _ in _progress(schedule(len(flat), plan.repeats, interleave=True), progress, "repeat"):
            time_repeat(flat[w], plan, track_memory=False)
        for (target, run_plan), runner, target_works in zip(runs, runners, works):
            rows += finish(target, runner, [result_row(work, run_plan) for work in target_works])
    return rows


def torch_device(requested: str) -> tuple[str, AcfdError | None]:
    """Where the PyTorch variants and the reference matmul run, and why PyTorch cannot run
    where ``--device`` asks (None when it can). Every other artifact gets ``--device`` as
    given and runs where its own backend can (the one device answer): a CPU-only torch
    beside onnxruntime-gpu or TensorRT does not stop ``--device cuda`` for their artifacts;
    it refuses only the PyTorch ones (the reference matmul then runs on the CPU)."""
    try:
        return str(resolve_device(requested)), None
    except AcfdError as exc:
        # the libraries of the file backends that can run on a GPU, other than torch
        others = {b.device_answer for b in backends() if "cuda" in b.devices and not b.schemes} - {"torch"}
        if parse_device(requested).is_cuda and any(cuda_status(name).usable for name in sorted(others)):
            return "cpu", exc
        raise


def run_bench(opts: BenchOptions) -> tuple[dict[str, Any], list[str]]:
    """Measure every target; returns the JSON document and the failed checks (budget,
    parity, regression against ``opts.baseline``)."""
    if opts.min_time < 0 or opts.warmup < 0:
        raise AcfdError("--min-time and --warmup must not be negative")
    device, torch_refused = torch_device(opts.device)
    if opts.cuda_graphs and not device.startswith("cuda"):
        raise AcfdError("--cuda-graphs needs a CUDA device")
    torch_precision = "fp16" if opts.precision == "fp16" else "fp32"
    torch_opts = TorchOptions(
        device=device, precision=torch_precision, cuda_graphs=opts.cuda_graphs, compile=opts.compile, artifact_device=opts.device
    )
    baseline = read_baseline(opts.baseline) if opts.baseline else None
    targets, reference_path = collect_targets(opts, torch_opts)
    if torch_refused is not None and any(t.backend == "torch" for t in targets):
        raise torch_refused
    budget = opts.budget_ms if opts.budget_ms is not None else (50.0 if opts.ms_test else None)
    plan = BenchPlan(
        batches=opts.batches,
        imgsz=opts.imgsz,
        ms_test=opts.ms_test,
        source=opts.source,
        repeats=opts.repeats,
        policy=TimingPolicy(warmup=opts.warmup, min_seconds=opts.min_time),
        device=device,
    )
    env = environment()
    ref_ms, ref_gflops = reference_workload(torch.device(device))
    verifiers: dict[bool, Any] = {}
    reference_runner = None
    if opts.parity:
        if reference_path is None:
            raise AcfdError("--parity needs the training checkpoint: pass --weights PATH or a .pth among --model")
        reference_runner = TorchRunner(load_model(reference_path), "cpu", "fp32", "reference")

    def finish(target: Target, runner: Runner, target_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if reference_runner is not None:
            int8 = target.precision == "int8"
            verifier = verifiers.setdefault(int8, parity_verifier(reference_runner, plan.imgsz, int8))
            parity = parity_row(target, runner, verifier)
            for row in target_rows:
                row["parity"], row["parity_ok"] = parity, parity["passed"]
        if not plan.ms_test:
            add_efficiency(target_rows, network_gflops(target.path, plan.imgsz), ref_gflops)
        return target_rows

    rows = _time_targets(targets, plan, opts.interleave, opts.progress, finish)
    for finding in check_budget(rows, budget):
        next(r for r in rows if result_key(r) == finding.key)["budget_ok"] = finding.ok
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "acfd-bench",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine_class": opts.machine_class or machine_class(env),
        "environment": env,
        "reference_ms": round(ref_ms, 4),
        "reference_gflops": round(ref_gflops, 1),
        "budget_ms": budget,
        "plan": {
            "batches": list(plan.batches),
            "input": plan.input_label,
            "repeats": plan.repeats,
            "schedule": "interleaved" if opts.interleave else "sequential",
            "min_time_s": opts.min_time,
            "warmup": opts.warmup,
        },
        "results": rows,
    }
    failed = [f"{result_key(r)}: over budget ({r['per_image_ms']:.2f} ms > {budget:g} ms)" for r in rows if r.get("budget_ok") is False]
    failed += [f"{result_key(r)}: parity failed" for r in rows if r.get("parity_ok") is False and r["batch"] == plan.batches[0]]
    if baseline is not None:
        findings = check_baseline(document, baseline, opts.max_regression)
        document["baseline"] = {"path": str(opts.baseline), "findings": [f.__dict__ for f in findings]}
        failed += [f"{f.key}: {f.message}" for f in findings if not f.ok]
    return document, failed
