"""The end-to-end graph against the raw network plus the Python pipeline, per image, in one run.

    .venv/bin/python benchmarks/bench_end2end.py [--source 1920x1080] [--repeats 5]

On the bundled demo model, ONNX Runtime (CPU provider), fp32 and int8: the paper's
multi-scale test (480x645, 640x860, 800x1075) of one decoded image, timed as

* ``raw + pipeline``: ``Detector`` over the raw ONNX file (acfd-detect's path: resize with
  Pillow, three network calls, top-k, NMS in PyTorch);
* ``e2e``: one call of the end-to-end graph on the uint8 image;
* ``network only``: the raw network's three calls on already-resized inputs (the floor).

Rounds are interleaved (one of each per round, so other load hits all alike) and the
median is reported, with ratios to the network-only time of the same precision. Also the
bytes one response carries (raw outputs of the three scales against the e2e outputs).
Writes ``benchmarks/results/end2end_cpu.json`` and ``.md``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import acfd_deploy  # noqa: E402
from acfd_deploy.bench.harness import decode, source_jpeg  # noqa: E402
from acfd_deploy.envinfo import environment  # noqa: E402
from acfd_deploy.export.end2end import wrap_end_to_end  # noqa: E402
from acfd_deploy.export.int8 import load_calibration, quantize_int8  # noqa: E402
from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata  # noqa: E402
from acfd_deploy.pipeline.detector import MS_TEST_SCALES, Detector, DetectorConfig  # noqa: E402
from acfd_deploy.pipeline.preprocess import preprocess_batch  # noqa: E402
from acfd_deploy.resources import calibration_dir, demo_weights  # noqa: E402
from acfd_deploy.runtime.registry import load_runner  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="1920x1080", help="WIDTHxHEIGHT of a synthetic scene, or an image file")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "end2end_cpu")
    args = ap.parse_args()
    load_before = [round(v, 2) for v in os.getloadavg()]
    folded = acfd_deploy.reparameterize(acfd_deploy.load_model(demo_weights()))
    raw = export_onnx(folded)
    set_metadata(raw, {"precision": "fp32"})
    calib = load_calibration(calibration_dir(), (640, 640), 125, 8)
    q, _ = quantize_int8(raw, calib)
    set_metadata(q, {"precision": "int8"})
    image = decode(source_jpeg(args.source))
    inputs = [preprocess_batch([image], s)[0] for s in MS_TEST_SCALES]
    workloads = {}
    with tempfile.TemporaryDirectory(prefix="acfd-bench-e2e-") as tmp:
        for precision, proto in (("fp32", raw), ("int8", q)):
            raw_path = save_onnx(proto, Path(tmp) / f"m.{precision}.onnx")
            e2e_path = save_onnx(wrap_end_to_end(proto, MS_TEST_SCALES), Path(tmp) / f"m.e2e.{precision}.onnx")
            opts = {"device": "cpu", **({"threads": args.threads} if args.threads else {})}
            raw_runner, e2e_runner = load_runner(raw_path, **opts), load_runner(e2e_path, **opts)
            detector = Detector(raw_runner, DetectorConfig(scales=MS_TEST_SCALES, batch_size=1))
            workloads[f"network only {precision}"] = lambda r=raw_runner: [r.infer(x) for x in inputs]
            workloads[f"raw + pipeline {precision}"] = lambda d=detector: d.detect([image])
            workloads[f"e2e {precision}"] = lambda r=e2e_runner, x=image[None]: r.infer_detections(x)
        for call in workloads.values():  # warm-up: sessions allocate on the first call
            call()
        times: dict[str, list[float]] = {k: [] for k in workloads}
        for _ in range(max(1, args.repeats)):
            for name, call in workloads.items():
                t0 = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t0) * 1e3)
        raw_bytes = sum(o.nbytes for x in inputs for o in raw_runner.infer(x))
        e2e_bytes = sum(o.nbytes for o in e2e_runner.infer_detections(image[None]))
    median = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name, ms in median.items():
        precision = name.split()[-1]
        rows.append({"path": name, "ms_per_image": round(ms, 1), "vs_network": round(ms / median[f"network only {precision}"], 3)})
    env = environment()
    result = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": "acfd-tiny demo (bundled)",
        "source": args.source,
        "scales": [list(s) for s in MS_TEST_SCALES],
        "repeats": args.repeats,
        "rows": rows,
        "samples_ms": {k: [round(t, 1) for t in v] for k, v in times.items()},
        "bytes_per_response": {"raw outputs, three scales": raw_bytes, "e2e outputs": e2e_bytes},
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "environment": env,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [
        "# End-to-end graph vs raw network + Python pipeline (CPU)",
        "",
        f"`benchmarks/bench_end2end.py --source {args.source} --repeats {args.repeats}`, {result['created']}; "
        f"the demo model, ONNX Runtime CPU provider, the paper's multi-scale test of one decoded image; "
        f"median of {args.repeats} interleaved rounds.",
        "",
        f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count', os.cpu_count())} cores; load average before {load_before}, "
        f"after {result['load_after']} (shared machine: compare the ratios of one run, not the absolute figures).",
        "",
        "| path | ms per image | x network only |",
        "| --- | --- | --- |",
        *[f"| {r['path']} | {r['ms_per_image']} | {r['vs_network']} |" for r in rows],
        "",
        f"Bytes per response: raw network outputs of the three scales {raw_bytes:,} B; end-to-end outputs {e2e_bytes:,} B.",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
