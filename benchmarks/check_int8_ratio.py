"""Guard: the paper network's int8 speed-up over ONNX Runtime fp32, as a plain user gets it.

    .venv/bin/python benchmarks/check_int8_ratio.py                      # export, then time
    .venv/bin/python benchmarks/check_int8_ratio.py --export-dir OUT/paper --json r.json

Exports ``acfd-vovnetv3-51`` (well-conditioned random weights: latency does not depend on
the values) with the functions acfd-export's int8 steps call (fp32 ONNX, int8 Q/DQ for ONNX
Runtime, int8 IR for OpenVINO; no verification, that is acfd-export's job), or takes the
folder an ``acfd-export --int8 [--openvino]`` wrote. Then times, in one process, in
interleaved rounds (each round calls every artifact once, the order rotated; a slow spell
of the shared machine hits them alike): ONNX Runtime fp32 and int8 through a *plain*
``onnxruntime.InferenceSession`` (CPU provider, ``intra_op_num_threads`` = ``--threads``,
everything else ONNX Runtime's default, which is ORT_ENABLE_ALL), and OpenVINO int8 through
the project's runner. The judged figure is the median over rounds of each round's ratio
``fp32 ms / int8 ms``; exit 1 when one falls below its floor in
``benchmarks/int8_ratio_floor.json`` (how the floors were chosen: that file and
benchmarks/results/int8_ratio.md), 2 on bad input. Not a timed test: a benchmark check.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOORS = ROOT / "benchmarks" / "int8_ratio_floor.json"
REFERENCE = "ONNX Runtime fp32"
JUDGED = {"onnxruntime_int8": "ONNX Runtime int8", "openvino_int8": "OpenVINO int8"}


class BadInput(Exception):
    """Exit 2 with one line."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--export-dir", type=Path, help="an acfd-export folder (STEM.onnx, STEM.int8.onnx, STEM.int8.xml); default: export now")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median of the per-round ratios); at least 3")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls of each artifact before the rounds")
    ap.add_argument("--settle", type=int, default=1, help="untimed calls of each artifact at the start of its turn in a round")
    ap.add_argument("--calls", type=int, default=3, help="timed calls of each artifact per round (their median counts)")
    ap.add_argument("--threads", type=int, default=2, help="intra_op_num_threads of ONNX Runtime and OpenVINO's threads")
    ap.add_argument("--imgsz", nargs=2, type=int, default=[640, 640], metavar=("H", "W"))
    ap.add_argument("--floors", type=Path, default=FLOORS, help="JSON with the floors (default: benchmarks/int8_ratio_floor.json)")
    ap.add_argument("--keep-export", type=Path, metavar="DIR", help="export into DIR and keep it (for --export-dir next time)")
    ap.add_argument("--json", type=Path, help="write every time, ratio and the machine here")
    ap.add_argument("--calib-limit", type=int, default=8, help="bundled calibration images used when exporting")
    args = ap.parse_args(argv)
    if args.rounds < 3:
        ap.error("--rounds must be at least 3 (the median of fewer rounds is one noisy call)")
    if min(args.threads, args.calls, args.calib_limit) < 1 or min(args.warmup, args.settle) < 0:
        ap.error("--threads, --calls and --calib-limit must be positive, --warmup and --settle not negative")
    if args.export_dir is not None and args.keep_export is not None:
        ap.error("--keep-export makes an export; --export-dir takes one: pass one of them")
    if min(args.imgsz) < 128:
        ap.error("--imgsz below 128 is not a deployment size of the paper network")
    return args


def machine_class(flags: set[str]) -> str:
    """The floors' key: int8 speed-ups differ by whole factors between CPUs with AMX int8
    tiles, with VNNI dot products only, and without either (OpenVINO int8 read 5-7x ONNX
    Runtime fp32 on a 2-core Xeon with AMX, 3.7-3.9x on a 2-core EPYC with VNNI)."""
    if "amx_int8" in flags:
        return "x86-amx"
    if flags & {"avx512_vnni", "avx_vnni"}:
        return "x86-vnni"
    return "other"


def load_floors(path: Path, machine: str) -> dict[str, float]:
    """The floors of ``machine``'s class by judged key; a file that lacks one or holds a
    non-positive one is bad input (so is a class it has no floors for: measure first)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read the floors {path} ({exc})") from None
    classes = doc.get("machine_classes", {}) if isinstance(doc, dict) else {}
    if machine not in classes:
        raise BadInput(f"{path} has no floors for machine class {machine!r} (has: {', '.join(classes) or 'none'}); measure and add them")
    floors = classes[machine].get("floors", {}) if isinstance(classes[machine], dict) else {}
    out: dict[str, float] = {}
    for key in JUDGED:
        value = floors.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise BadInput(f"{path}: {machine}.floors.{key} must be a positive number, got {value!r}")
        out[key] = float(value)
    return out


def round_ratios(times: dict[str, list[float]], reference: str = REFERENCE) -> dict[str, list[float]]:
    """Each artifact's speed-up over ``reference`` in every round (same-round pairs only)."""
    ref = times[reference]
    return {name: [r / t for r, t in zip(ref, ts)] for name, ts in times.items() if name != reference}


def judge(ratios: dict[str, list[float]], floors: dict[str, float]) -> tuple[list[dict[str, Any]], bool]:
    """One verdict per floor: ``pass`` / ``FAIL`` on the median per-round ratio, ``n/a``
    where the artifact was not timed. Passed overall only when nothing failed and at least
    one floor was judged (no check passes on zero evidence)."""
    rows, judged, failed = [], 0, False
    for key, floor in floors.items():
        values = ratios.get(JUDGED[key], [])
        if not values:
            rows.append({"check": key, "artifact": JUDGED[key], "median_ratio": None, "floor": floor, "verdict": "n/a"})
            continue
        median = statistics.median(values)
        ok = median >= floor
        judged += 1
        failed |= not ok
        verdict = "pass" if ok else "FAIL"
        rows.append({"check": key, "artifact": JUDGED[key], "median_ratio": round(median, 3), "floor": floor, "verdict": verdict})
    return rows, judged > 0 and not failed


def find_export(folder: Path) -> dict[str, Path]:
    """The fp32 / int8 ONNX files (and the int8 IR where there is one) of an acfd-export folder."""
    int8 = sorted(folder.glob("*.int8.onnx")) if folder.is_dir() else []
    if len(int8) != 1:
        raise BadInput(f"--export-dir {folder}: expected one STEM.int8.onnx (acfd-export --int8), found {len(int8)}")
    stem = int8[0].name[: -len(".int8.onnx")]
    paths = {"fp32": folder / f"{stem}.onnx", "int8": int8[0], "int8_ir": folder / f"{stem}.int8.xml"}
    if not paths["fp32"].is_file():
        raise BadInput(f"--export-dir {folder}: {paths['fp32'].name} (the fp32 ONNX) is missing")
    return paths


def export_paper(folder: Path, imgsz: tuple[int, int], calib_limit: int) -> dict[str, Path]:
    """The paper network's fp32 ONNX, int8 ONNX and OpenVINO int8 IR, made by the same
    functions as acfd-export's steps (onnx_fp32, onnx_int8, openvino_int8)."""
    import torch

    import acfd_deploy
    from acfd_deploy.calibrate import well_conditioned
    from acfd_deploy.data.synth import synthetic_batch
    from acfd_deploy.errors import AcfdError
    from acfd_deploy.export.int8 import load_calibration, quantize_int8
    from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata, simplify_if_equal
    from acfd_deploy.model.anchors import min_input_size
    from acfd_deploy.resources import calibration_dir

    torch.manual_seed(0)
    model = well_conditioned(acfd_deploy.build_model("acfd-vovnetv3-51"), seed=0).eval()
    folded = acfd_deploy.reparameterize(model)
    proto, note = simplify_if_equal(export_onnx(folded), [synthetic_batch(1, 160, 224, seed=1)])
    paths = {"fp32": folder / "paper.onnx", "int8": folder / "paper.int8.onnx", "int8_ir": folder / "paper.int8.xml"}
    set_metadata(proto, {"precision": "fp32", "config_name": "acfd-vovnetv3-51", "simplify": note})
    save_onnx(proto, paths["fp32"])
    images = load_calibration(calibration_dir(), imgsz, min_input_size(model.config), calib_limit)
    q, _ = quantize_int8(proto, images)
    set_metadata(q, {"precision": "int8", "config_name": "acfd-vovnetv3-51"})
    save_onnx(q, paths["int8"])
    try:
        from acfd_deploy.export.openvino import write_ir

        q_ov, _ = quantize_int8(proto, images, placement="openvino")
        set_metadata(q_ov, {"precision": "int8", "config_name": "acfd-vovnetv3-51"})
        write_ir(save_onnx(q_ov, folder / "paper.int8.openvino.onnx"), paths["int8_ir"])
    except (ImportError, AcfdError) as exc:  # no OpenVINO here: its floor reads n/a
        print(f"OpenVINO int8 not made ({exc})", flush=True)
    return paths


def plain_session(path: Path, threads: int) -> Any:
    """What a user who loads the file with ONNX Runtime gets: defaults, threads set."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def callables(paths: dict[str, Path], threads: int, x: Any) -> dict[str, Callable[[], object]]:
    calls: dict[str, Callable[[], object]] = {}
    for name, key in ((REFERENCE, "fp32"), (JUDGED["onnxruntime_int8"], "int8")):
        session = plain_session(paths[key], threads)
        feed = {session.get_inputs()[0].name: x}
        calls[name] = lambda s=session, f=feed: s.run(None, f)
    if paths["int8_ir"].is_file():
        try:
            from acfd_deploy.runtime.openvino_runner import OpenVinoRunner
        except ImportError:
            return calls
        runner = OpenVinoRunner(paths["int8_ir"], threads=threads)
        calls[JUDGED["openvino_int8"]] = lambda r=runner: r.infer(x)
    return calls


def time_rounds(
    calls: dict[str, Callable[[], object]], rounds: int, warmup: int, settle: int = 1, per_round: int = 3
) -> dict[str, list[float]]:
    """Each artifact's milliseconds per round: in every round each artifact (order
    rotated) makes ``settle`` untimed calls, then ``per_round`` timed ones, of which the
    median counts. The untimed calls absorb the cost of switching from another model
    (the other session's spinning threads, cold caches), which a deployment running one
    model never pays; ``settle=0, per_round=1`` times single alternating calls."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for _ in range(settle):
                calls[name]()
            samples = []
            for _ in range(per_round):
                start = time.perf_counter()
                calls[name]()
                samples.append((time.perf_counter() - start) * 1e3)
            times[name].append(statistics.median(samples))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.0f} ms" for n in names), flush=True)
    return times


def machine() -> dict[str, Any]:
    from acfd_deploy.envinfo import cpu_flags, environment, package_version

    env = environment()
    env["openvino"] = package_version("openvino")
    env["cpu_flags"] = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})
    return env


def run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from acfd_deploy.data.synth import synthetic_batch
    from acfd_deploy.envinfo import cpu_flags

    machine_key = machine_class(cpu_flags())
    floors = load_floors(args.floors, machine_key)
    h, w = args.imgsz
    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="acfd-int8-ratio-") as tmp:
        if args.export_dir is not None:
            paths = find_export(args.export_dir)
        else:
            print("exporting acfd-vovnetv3-51 (fp32, int8 for ONNX Runtime and OpenVINO) ...", flush=True)
            folder = args.keep_export or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            paths = export_paper(folder, (h, w), args.calib_limit)
        x = synthetic_batch(1, h, w, seed=0)
        times = time_rounds(callables(paths, args.threads, x), args.rounds, args.warmup, args.settle, args.calls)
    ratios = round_ratios(times)
    rows, passed = judge(ratios, floors)
    doc = {
        "what": f"acfd-vovnetv3-51, {h}x{w}, batch 1, {args.rounds} interleaved rounds, {args.threads} threads",
        "schedule": {"warmup": args.warmup, "settle": args.settle, "calls": args.calls},
        "export": str(args.export_dir or args.keep_export or "made in a temporary folder"),
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": machine(),
        "machine_class": machine_key,
        "load_average_1_5_15min": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]},
        "ms": {n: [round(t, 1) for t in ts] for n, ts in times.items()},
        "median_ms": {n: round(statistics.median(ts), 1) for n, ts in times.items()},
        "ratios": {n: [round(r, 3) for r in rs] for n, rs in ratios.items()},
        "verdicts": rows,
        "passed": passed,
    }
    return doc, passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        doc, passed = run(args)
    except BadInput as exc:
        print(f"check_int8_ratio: error: {exc}", file=sys.stderr)
        return 2
    print(f"machine class {doc['machine_class']} ({doc['environment']['cpu']}, {doc['environment']['cpu_count']} cores)")
    print(f"load average before {doc['load_average_1_5_15min']['before']}, after {doc['load_average_1_5_15min']['after']}")
    for name, ms in doc["median_ms"].items():
        print(f"  {name:20s} median {ms:8.1f} ms")
    for row in doc["verdicts"]:
        figure = "n/a" if row["median_ratio"] is None else f"{row['median_ratio']:.2f}x"
        print(f"  {row['artifact']:20s} / {REFERENCE}: {figure} (floor {row['floor']:.2f}x): {row['verdict']}")
    if not any(r["verdict"] != "n/a" for r in doc["verdicts"]):
        print("check_int8_ratio: nothing was judged", file=sys.stderr)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
