#!/usr/bin/env bash
# The end-to-end graph against the raw network + the Python pipeline, per image, on this CPU:
#   1. acfd-export --int8 --openvino --end2end --ms-test: raw and end-to-end ONNX fp32/int8 and their IR
#   2. acfd-bench --ms-test --source 1920x1080 --interleave on all of them in one run (each round times
#      every artifact once, so a shared machine slows all alike): the raw files run the paper's path in
#      Python (decode, 3 resizes, 3 network calls, merge, NMS), the e2e files decode and make one call
#   3. the raw network alone at each of the three test scales (their sum is the network's own time)
# Usage: bash benchmarks/bench_end2end_cpu.sh OUT_DIR   (results: OUT_DIR/*.json, *.txt)
set -euo pipefail
out=${1:?usage: bench_end2end_cpu.sh OUT_DIR}
cd "$(dirname "$0")/.."
bin=${BIN:-.venv/bin}
mkdir -p "$out"
"$bin/acfd-export" --int8 --openvino --end2end --ms-test --engine onnx --out "$out/export" | tee "$out/export.txt"
e="$out/export/acfd-tiny-demo"
models=("$e.onnx" "$e.e2e.onnx" "$e.int8.onnx" "$e.e2e.int8.onnx" "$e.xml" "$e.e2e.xml" "$e.int8.xml" "$e.e2e.int8.xml")
"$bin/acfd-bench" --ms-test --source 1920x1080 --interleave --device cpu --repeats 3 --warmup 1 --min-time 0.1 \
  --json "$out/ms_test.json" --model "${models[@]}" | tee "$out/ms_test.txt"
for hw in "480 645" "640 860" "800 1075"; do
  "$bin/acfd-bench" --imgsz $hw --interleave --device cpu --repeats 3 --warmup 1 --min-time 0.1 \
    --json "$out/network_${hw/ /x}.json" --model "$e.onnx" "$e.int8.onnx" "$e.xml" "$e.int8.xml" | tee "$out/network_${hw/ /x}.txt"
done
