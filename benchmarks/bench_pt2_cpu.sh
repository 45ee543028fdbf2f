#!/usr/bin/env bash
# The CPU figures of AOTInductor packages (benchmarks/results/pt2_cpu.md), in one run:
#   bash benchmarks/bench_pt2_cpu.sh OUT_DIR [CHECKPOINT]
# 1. acfd-export --pt2 --openvino of the demo model (or CHECKPOINT): the folded graph, ONNX fp32,
#    the .pt2 with acfd's default inductor settings and OpenVINO IR, each verified; export.json
#    records the torch.export and AOTInductor compile seconds
# 2. the same folded graph compiled with other inductor settings (benchmarks/pt2_variants.py)
# 3. one acfd-bench --interleave run over all of them, 640x640, batch 1 and 8, fp32
# AOTInductor compiles C++ for minutes per package on 2 cores: this takes a while.
set -euo pipefail
out=${1:?usage: bench_pt2_cpu.sh OUT_DIR [CHECKPOINT]}
checkpoint=${2:-}
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread\(s\)"; uptime; } | tee "$out/machine.txt"
model=(); [[ -n "$checkpoint" ]] && model=(--model "$checkpoint")
/usr/bin/time -f "acfd-export: %e s wall" $py -m acfd_deploy.cli.export "${model[@]}" --pt2 --openvino --batch 2 --out "$out/export" \
  2>&1 | grep -v "^W[0-9]" | tee "$out/export.txt"
$py benchmarks/pt2_variants.py "$out/variants" "${model[@]}" --variant freezing 2>&1 | grep -v "^W[0-9]" | tee "$out/variants.txt"
uptime | tee -a "$out/machine.txt"
$py -m acfd_deploy.cli.bench --export-dir "$out/export" --model "$out"/variants/*.pt2 --precision fp32 --interleave \
  --batch 1,8 --imgsz 640 640 --repeats 5 --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
uptime | tee -a "$out/machine.txt"
