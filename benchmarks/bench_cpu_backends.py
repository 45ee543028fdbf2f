"""CPU latency of every backend and precision, in one run: PyTorch, ONNX Runtime, OpenVINO.

    .venv/bin/python benchmarks/bench_cpu_backends.py [--models paper demo] [--batches 1 8] [--rounds 7] [--cache DIR]
    .venv/bin/python benchmarks/bench_cpu_backends.py --quick     # acfd-tiny, small images, 2 rounds: a smoke test

For each model (``paper``: acfd-vovnetv3-51 with well-conditioned random weights, which
latency does not depend on; ``demo``: the bundled trained acfd-tiny), exports ONNX fp32
and int8 (Q/DQ, acfd-export's own functions) and OpenVINO IR from them, then times, at
each batch size: the PyTorch training graph, the PyTorch folded graph, ONNX Runtime fp32
and int8, and OpenVINO fp32, bf16 (where the CPU has native bf16) and int8, in latency
mode, int8 both from ONNX Runtime's Q/DQ file and from the placement made for OpenVINO
(export/int8.py: the prediction convolutions take int8 inputs too), the latter also
compiled for the exact input shape (``static_shapes``); at batches above 1
also OpenVINO in throughput mode (streams). Runs are interleaved
(one call of each artifact per round, the order rotated every round, so drift and other
load hit every artifact alike); the median of the rounds is reported, with the ratio to
ONNX Runtime fp32 measured in the same run. Every artifact's outputs are also compared
with ONNX Runtime fp32 on the timed images (detection match), so a fast wrong artifact
shows. OpenVINO int8's per-layer times (performance counters) are recorded for both
placements: how much still runs in fp32, and on what. Writes ``cpu_backends.md`` and ``cpu_backends.json``
to ``--out``; the CPU, its bf16/VNNI/AMX flags, core count, load and library versions are
printed beside the numbers.
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
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import acfd_deploy  # noqa: E402
from acfd_deploy.calibrate import well_conditioned  # noqa: E402
from acfd_deploy.data.synth import synthetic_batch  # noqa: E402
from acfd_deploy.envinfo import cpu_flags, environment, package_version  # noqa: E402
from acfd_deploy.export.int8 import load_calibration, quantize_int8  # noqa: E402
from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata, simplify_if_equal  # noqa: E402
from acfd_deploy.export.openvino import write_ir  # noqa: E402
from acfd_deploy.resources import calibration_dir, demo_weights  # noqa: E402
from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner  # noqa: E402
from acfd_deploy.runtime.openvino_model import cpu_supports_bf16  # noqa: E402
from acfd_deploy.runtime.openvino_profile import format_breakdown, layer_breakdown  # noqa: E402
from acfd_deploy.runtime.openvino_runner import OpenVinoRunner  # noqa: E402
from acfd_deploy.runtime.torch_runner import TorchRunner  # noqa: E402
from acfd_deploy.verify import compare as parity  # noqa: E402

MODELS = {
    "paper": ("acfd-vovnetv3-51", None),  # random weights, well-conditioned
    "demo": ("acfd-tiny", demo_weights()),
    "tiny": ("acfd-tiny", None),  # --quick
}
REFERENCE = "ONNX Runtime fp32"
OV_INT8_OWN = "OpenVINO int8, OpenVINO placement"


def load(key: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(training graph, folded graph) of a model."""
    config, weights = MODELS[key]
    if weights is not None:
        model = acfd_deploy.load_model(weights)
    else:
        torch.manual_seed(0)
        model = well_conditioned(acfd_deploy.build_model(config), seed=0)
    model = model.eval()
    return model, acfd_deploy.reparameterize(model)


def artifacts(key: str, folded: torch.nn.Module, folder: Path, imgsz: tuple[int, int], calib: Path, calib_limit: int) -> dict[str, Path]:
    """ONNX fp32, int8 in both Q/DQ placements (ONNX Runtime's, OpenVINO's) and their IR in
    ``folder``; a file already there is reused (``--cache``: quantizing the paper network
    takes minutes on 2 cores)."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "fp32": folder / f"{key}.onnx",
        "int8": folder / f"{key}.int8.onnx",
        "int8_ov": folder / f"{key}.int8-openvino.onnx",
        "fp32_ir": folder / f"{key}.xml",
        "int8_ir": folder / f"{key}.int8.xml",
        "int8_ov_ir": folder / f"{key}.int8-openvino.xml",
    }
    if all(p.is_file() for p in paths.values()):
        print(f"[{key}] reusing the artifacts in {folder}", flush=True)
        return paths
    t0 = time.perf_counter()
    if paths["fp32"].is_file():
        proto = onnx.load(str(paths["fp32"]))
    else:
        proto, note = simplify_if_equal(export_onnx(folded), [synthetic_batch(1, 160, 224, seed=1)])
        set_metadata(proto, {"precision": "fp32", "config_name": MODELS[key][0], "simplify": note})
        save_onnx(proto, paths["fp32"])
    images = None
    for name, placement in (("int8", "onnxruntime"), ("int8_ov", "openvino")):
        if not paths[name].is_file():
            images = images or load_calibration(calib, imgsz, 125, calib_limit)
            q, _ = quantize_int8(proto, images, placement=placement)
            set_metadata(q, {"precision": "int8", "config_name": MODELS[key][0], "int8_placement": placement})
            save_onnx(q, paths[name])
    for onnx_name in ("fp32", "int8", "int8_ov"):
        if not paths[f"{onnx_name}_ir"].is_file():
            write_ir(paths[onnx_name], paths[f"{onnx_name}_ir"])
    print(f"[{key}] artifacts made in {time.perf_counter() - t0:.0f} s ({folder})", flush=True)
    return paths


def make_runners(model: torch.nn.Module, folded: torch.nn.Module, paths: dict[str, Path], batch: int, bf16: bool) -> dict[str, Any]:
    runners: dict[str, Any] = {
        "PyTorch training graph fp32": TorchRunner(model),
        "PyTorch folded graph fp32": TorchRunner(folded),
        REFERENCE: OnnxRuntimeRunner(paths["fp32"], providers=["CPUExecutionProvider"]),
        "ONNX Runtime int8": OnnxRuntimeRunner(paths["int8"], providers=["CPUExecutionProvider"]),
        "OpenVINO fp32": OpenVinoRunner(paths["fp32_ir"]),
    }
    if bf16:
        runners["OpenVINO bf16"] = OpenVinoRunner(paths["fp32_ir"], precision="bf16")
    runners["OpenVINO int8"] = OpenVinoRunner(paths["int8_ir"])  # the same Q/DQ file as ONNX Runtime's
    runners[OV_INT8_OWN] = OpenVinoRunner(paths["int8_ov_ir"])
    runners[f"{OV_INT8_OWN}, static shape"] = OpenVinoRunner(paths["int8_ov_ir"], static_shapes=True)
    if batch > 1:  # streams only help with several requests in flight
        runners["OpenVINO fp32 throughput"] = OpenVinoRunner(paths["fp32_ir"], mode="throughput")
        if bf16:
            runners["OpenVINO bf16 throughput"] = OpenVinoRunner(paths["fp32_ir"], precision="bf16", mode="throughput")
        runners[f"{OV_INT8_OWN} throughput"] = OpenVinoRunner(paths["int8_ov_ir"], mode="throughput")
    return runners


def time_rounds(runners: dict[str, Any], x: np.ndarray, rounds: int, label: str) -> dict[str, list[float]]:
    for runner in runners.values():  # warm-up (allocations, kernel selection, first-shape setup)
        runner.infer(x)
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t = time.perf_counter()
            runners[name].infer(x)
            times[name].append(time.perf_counter() - t)
        print(f"{label} round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1] * 1e3:.0f}" for n in names), flush=True)
    return times


def outputs_match(runners: dict[str, Any], x: np.ndarray) -> dict[str, dict[str, Any]]:
    """Each artifact against ONNX Runtime fp32 on the timed images."""
    ref = runners[REFERENCE].infer(x)
    out = {}
    for name, runner in runners.items():
        cand = runner.infer(x)
        diff, match = parity.tensor_diff(ref, cand), parity.detection_match(ref, cand)
        out[name] = {
            "score_abs": diff.score_abs,
            "box_rel": diff.box_rel,
            "match_rate": match.rate,
            "reference_detections": match.reference,
        }
    return out


def int8_profile(path: Path, x: np.ndarray, repeats: int = 3) -> dict[str, Any]:
    """OpenVINO int8's per-layer times (the fastest of ``repeats`` profiled runs)."""
    runner = OpenVinoRunner(path, profile=True)
    runner.infer(x)
    best = min((runner.profile(x) for _ in range(repeats)), key=lambda layers: sum(la.ms for la in layers))
    return layer_breakdown(best)


def machine() -> dict[str, Any]:
    env = environment()
    flags = cpu_flags()
    bf16, why = cpu_supports_bf16()
    env.update(
        openvino=package_version("openvino"),
        cpu_flags={f: f in flags for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")},
        native_bf16=bf16,
        native_bf16_reason=why,
    )
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["paper", "demo"])
    ap.add_argument("--imgsz", nargs=2, type=int, default=[640, 640])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported); at least 3")
    ap.add_argument("--calib", type=Path, default=calibration_dir(), help="calibration images (default: the bundled ones)")
    ap.add_argument("--calib-limit", type=int, default=8, help="calibration images used (latency does not depend on it)")
    ap.add_argument("--cache", type=Path, default=None, help="keep the exported artifacts here and reuse them next time")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--quick", action="store_true", help="acfd-tiny (random weights) at 160x224, batches 1 and 2, 3 rounds: under a minute")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.imgsz, args.batches, args.rounds, args.calib_limit = ["tiny"], [160, 224], [1, 2], 3, 2
    h, w = args.imgsz
    rounds = max(3, args.rounds)
    env = machine()
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = _dt.datetime.now(_dt.timezone.utc)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="acfd-bench-cpu-") as tmp:
        for key in args.models:
            model, folded = load(key)
            folder = (args.cache or Path(tmp)) / f"{key}-{h}x{w}"
            paths = artifacts(key, folded, folder, (h, w), args.calib, args.calib_limit)
            results[key] = {"config": MODELS[key][0], "weights": str(MODELS[key][1] or "random, well-conditioned"), "batches": {}}
            for batch in args.batches:
                x = synthetic_batch(batch, h, w, seed=0)
                runners = make_runners(model, folded, paths, batch, env["native_bf16"])
                times = time_rounds(runners, x, rounds, f"[{key} b{batch}]")
                med = {n: statistics.median(v) for n, v in times.items()}
                ref = med[REFERENCE]
                results[key]["batches"][str(batch)] = {
                    "median_ms": {n: round(v * 1e3, 1) for n, v in med.items()},
                    "per_image_ms": {n: round(v * 1e3 / batch, 1) for n, v in med.items()},
                    "speedup_vs_onnxruntime_fp32": {n: round(ref / v, 2) for n, v in med.items()},
                    "all_ms": {n: [round(t * 1e3, 1) for t in v] for n, v in times.items()},
                    "outputs_vs_onnxruntime_fp32": outputs_match(runners, x),
                    "openvino": {n: r.describe() for n, r in runners.items() if isinstance(r, OpenVinoRunner)},
                }
                del runners
            probe = synthetic_batch(1, h, w, seed=0)
            results[key]["openvino_int8_layers"] = {
                "onnxruntime placement": int8_profile(paths["int8_ir"], probe),
                "openvino placement": int8_profile(paths["int8_ov_ir"], probe),
            }
    load_after = [round(v, 2) for v in os.getloadavg()]
    doc = {
        "what": f"CPU backends, {h}x{w}, batches {args.batches}, median of {rounds} interleaved rounds",
        "measured_at": started.isoformat(timespec="seconds"),
        "environment": env,
        "load_average_1_5_15min": {"before": load_before, "after": load_after},
        "models": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_backends.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    text = markdown(doc, h, w, rounds)
    (args.out / "cpu_backends.md").write_text(text)
    print(text)
    return 0


def markdown(doc: dict[str, Any], h: int, w: int, rounds: int) -> str:
    env = doc["environment"]
    flags = ", ".join(f for f, on in env["cpu_flags"].items() if on) or "none of the listed"
    lines = [
        f"# CPU backends: latency at {h}x{w}",
        "",
        f"CPU: {env['cpu']} ({env['cpu_count']} cores; flags: {flags}; native bf16: {'yes' if env['native_bf16'] else 'no'}). "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, openvino {env['openvino']}. "
        f"Median of {rounds} interleaved rounds, measured {doc['measured_at']}; load average (1 min) "
        f"{doc['load_average_1_5_15min']['before'][0]} before, {doc['load_average_1_5_15min']['after'][0]} after.",
        "",
        "OpenVINO runs with INFERENCE_PRECISION_HINT pinned (f32, or bf16 where named) and read back; "
        "latency mode unless marked throughput (streams, the batch split across them). "
        "Det. match: detections (score >= 0.3) of ONNX Runtime fp32 found again at IoU >= 0.9, |score diff| <= 0.02.",
    ]
    for model in doc["models"].values():
        for batch, b in model["batches"].items():
            lines += [
                "",
                f"## {model['config']} ({model['weights']}), batch {batch}",
                "",
                "| Artifact | Median latency | per image | vs ONNX Runtime fp32 | Det. match |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for name, ms in b["median_ms"].items():
                m = b["outputs_vs_onnxruntime_fp32"][name]
                lines.append(
                    f"| {name} | {ms:.0f} ms | {b['per_image_ms'][name]:.0f} ms | {b['speedup_vs_onnxruntime_fp32'][name]:.2f}x "
                    f"| {m['match_rate']:.1%} of {m['reference_detections']} |"
                )
        for placement, breakdown in model["openvino_int8_layers"].items():
            lines += ["", f"OpenVINO int8 ({placement} of Q/DQ), {model['config']}, batch 1: time per layer type (performance counters)"]
            lines += ["", "```", format_breakdown(breakdown), "```"]
    lines += [
        "",
        "Reproduce: `.venv/bin/python benchmarks/bench_cpu_backends.py`. Not a timed test: figures vary with machine and load.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
