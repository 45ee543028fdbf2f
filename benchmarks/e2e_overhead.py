"""What the end-to-end graph costs beyond the network: in one run, interleaved rounds, its
call on a decoded 1080x1920 frame against the raw network's three calls at the test scales
(the resized planes made outside the timing). The ratio is the quantity issue 17's goal
bounds (the end-to-end path within 5% of the network's own time).

    .venv/bin/python benchmarks/e2e_overhead.py EXPORT_DIR   (acfd-export --int8 --openvino --end2end --ms-test)
"""

import json
import os
import statistics as st
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from acfd_deploy.data.synth import generate_sample, sample_rng  # noqa: E402
from acfd_deploy.pipeline.detector import MS_TEST_SCALES  # noqa: E402
from acfd_deploy.pipeline.preprocess import preprocess_batch  # noqa: E402
from acfd_deploy.runtime.registry import load_runner  # noqa: E402

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("exports")
stem = sys.argv[2] if len(sys.argv) > 2 else "acfd-tiny-demo"
img = generate_sample(sample_rng(3, 0), 1080, 1920)[0]
planes = [preprocess_batch([img], s, False, (123.675, 116.28, 103.53), 125)[0] for s in MS_TEST_SCALES]
pairs = [
    ("ORT fp32", ".onnx", ".e2e.onnx"),
    ("ORT int8", ".int8.onnx", ".e2e.int8.onnx"),
    ("OpenVINO fp32", ".xml", ".e2e.xml"),
    ("OpenVINO int8", ".int8.xml", ".e2e.int8.xml"),
]
pairs = [(label, str(folder / (stem + a)), str(folder / (stem + b))) for label, a, b in pairs]
runners = {f: load_runner(f, device="cpu") for _, a, b in pairs for f in (a, b)}


def net(r):
    for p in planes:
        r.infer(p)


def e2e(r):
    r.infer_detections(img[None])


for _, a, b in pairs:
    net(runners[a])
    e2e(runners[b])
times = {f: [] for f in runners}
load0 = os.getloadavg()[0]
for _ in range(4):
    for _, a, b in pairs:
        t = time.perf_counter()
        net(runners[a])
        times[a].append(time.perf_counter() - t)
        t = time.perf_counter()
        e2e(runners[b])
        times[b].append(time.perf_counter() - t)
out = {}
for label, a, b in pairs:
    ratios = [y / x for x, y in zip(times[a], times[b])]
    out[label] = {
        "network_3_scales_ms": round(st.median(times[a]) * 1e3),
        "e2e_call_ms": round(st.median(times[b]) * 1e3),
        "e2e_over_network_per_round": [round(r, 2) for r in ratios],
        "median_ratio": round(st.median(ratios), 2),
    }
    print(label, out[label], flush=True)
print("load", load0, os.getloadavg()[0])
print(json.dumps(out, indent=1))
