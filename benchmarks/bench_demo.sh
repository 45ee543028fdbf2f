#!/usr/bin/env bash
# The bundled demo model's artifacts on this machine, as a user meets them:
#   1. acfd-export --fp16 --int8 (the README's main command) into OUT/export
#   2. latency at 640x640, batch 1 and 4, every artifact, with parity (int8 judged by AP)
#   3. the paper's whole per-image path (decode a 1920x1080 JPEG, 3 scales, NMS) against 50 ms
# Usage: bash benchmarks/bench_demo.sh OUT_DIR   (results: OUT_DIR/*.json, *.png, *.txt)
set -euo pipefail
out=${1:?usage: bench_demo.sh OUT_DIR}
cd "$(dirname "$0")/.."
bin=${BIN:-.venv/bin}
mkdir -p "$out"
"$bin/acfd-export" --fp16 --int8 --out "$out/export" | tee "$out/export.txt"
"$bin/acfd-bench" --export-dir "$out/export" --batch 1,4 --imgsz 640 640 --parity \
  --json "$out/latency_640.json" --plot "$out/latency_640.png" | tee "$out/latency_640.txt"
# over the 50 ms budget exits 1: the figures are still written, and are the point here
"$bin/acfd-bench" --export-dir "$out/export" --ms-test --source 1920x1080 --budget-ms 50 --batch 1 \
  --json "$out/ms_test.json" --plot "$out/ms_test.png" | tee "$out/ms_test.txt" || true
rm -rf "$out/export"
