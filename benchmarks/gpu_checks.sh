#!/usr/bin/env bash
# Every GPU check and benchmark in one run, for a session that is lent a GPU machine:
#   bash benchmarks/gpu_checks.sh OUT_DIR [--quick]
# 1. the GPU tests (parity on CUDA in fp32 and fp16, CUDA graphs) - pytest -m gpu
# 2. the paper network (calibrated random weights, docs/design.md#well-conditioned-weights) at 640x640:
#    PyTorch training graph fp32 vs folded fp32 / fp16 / fp16 + CUDA graphs, batch 1..32
# 3. the multi-scale test of a 1920x1080 image (3 scales + NMS) against the 50 ms budget
# 4. AOTInductor packages (.pt2) for CUDA, fp32 and fp16, of the demo model and the paper network:
#    acfd-export --pt2 --fp16 --device cuda verifies them on the GPU (tensor rule fp32, detection
#    rule fp16; export.json records compile seconds), then acfd-bench times each next to PyTorch
#    eager (fp32; fp16 and fp16 + CUDA graphs), batch 1, 8, 16, and the multi-scale path vs 50 ms
# Results: OUT_DIR/*.json, *.png, *.txt. --quick: acfd-tiny and small sizes (a CPU dry run).
set -euo pipefail
out=${1:?usage: gpu_checks.sh OUT_DIR [--quick]}
quick=${2:-}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
config=acfd-vovnetv3-51; batches=1,8,16,32; imgsz=(640 640); src=1920x1080; dev=cuda; extra=(--cuda-graphs)
if [[ "$quick" == "--quick" ]]; then
  config=acfd-tiny; batches=1,2; imgsz=(160 192); src=400x300; dev=cpu; extra=()
fi
$py - "$out" "$config" <<'PY' | tee "$out/environment.txt"
import json, sys, torch, acfd_deploy
from acfd_deploy.calibrate import well_conditioned
from acfd_deploy.envinfo import environment
out, config = sys.argv[1], sys.argv[2]
print(json.dumps(environment(), indent=2))
torch.manual_seed(0)
acfd_deploy.save_checkpoint(well_conditioned(acfd_deploy.build_model(config)), f"{out}/{config}.pth")
PY
if [[ "$dev" == cuda ]]; then
  $py -m pytest -m gpu -v -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.txt" || true
fi
bench=($py -m acfd_deploy.cli.bench --device "$dev" --repeats 5)
# fp32 first (training vs folded graph), then fp16 with and without CUDA graphs, same weights
"${bench[@]}" --model "$out/$config.pth" --batch "$batches" --imgsz "${imgsz[@]}" --parity \
  --json "$out/latency_fp32.json" --plot "$out/latency_fp32.png" 2>&1 | tee "$out/latency_fp32.txt" || true
if [[ "$dev" == cuda ]]; then
  "${bench[@]}" --model "$out/$config.pth" --precision fp16 "${extra[@]}" --batch "$batches" --imgsz "${imgsz[@]}" --parity \
    --json "$out/latency_fp16.json" --plot "$out/latency_fp16.png" 2>&1 | tee "$out/latency_fp16.txt" || true
  "${bench[@]}" --model "$out/$config.pth" --precision fp16 "${extra[@]}" --batch "$batches" --ms-test --source "$src" --budget-ms 50 \
    --json "$out/ms_test_fp16.json" --plot "$out/ms_test_fp16.png" 2>&1 | tee "$out/ms_test_fp16.txt" || true
fi
"${bench[@]}" --model "$out/$config.pth" --batch "$batches" --ms-test --source "$src" --budget-ms 50 \
  --json "$out/ms_test_fp32.json" --plot "$out/ms_test_fp32.png" 2>&1 | tee "$out/ms_test_fp32.txt" || true
if [[ "$dev" == cuda ]]; then
  for name in demo "$config"; do
    dir="$out/pt2_$name"
    weights=(); [[ "$name" != demo ]] && weights=(--model "$out/$config.pth")
    $py -m acfd_deploy.cli.export "${weights[@]}" --pt2 --fp16 --device cuda --engine onnx --imgsz 640 640 --batch 4 \
      --out "$dir" 2>&1 | tee "$out/pt2_export_$name.txt" || true
    stem=$(ls "$dir"/*.pt2 2>/dev/null | grep -v '\.fp16\.pt2$' | head -1); stem=${stem%.pt2}
    [[ -n "$stem" ]] || { echo "pt2 ($name): no package exported, see $out/pt2_export_$name.txt"; continue; }
    ref=(); [[ "$name" != demo ]] && ref=(--weights "$out/$config.pth")
    "${bench[@]}" --model "$stem.pt2" "$stem.deploy.pt" "${ref[@]}" --parity --interleave --batch 1,8,16 --imgsz 640 640 \
      --json "$out/pt2_${name}_fp32.json" 2>&1 | tee "$out/pt2_${name}_fp32.txt" || true
    "${bench[@]}" --model "$stem.fp16.pt2" "$stem.deploy.pt" "${ref[@]}" --precision fp16 --cuda-graphs --parity --interleave \
      --batch 1,8,16 --imgsz 640 640 --json "$out/pt2_${name}_fp16.json" 2>&1 | tee "$out/pt2_${name}_fp16.txt" || true
    "${bench[@]}" --model "$stem.fp16.pt2" "$stem.deploy.pt" --precision fp16 --cuda-graphs --interleave --batch 1 \
      --ms-test --source "$src" --budget-ms 50 --json "$out/pt2_${name}_ms_test.json" 2>&1 | tee "$out/pt2_${name}_ms_test.txt" || true
  done
else
  echo "pt2: skipping the CUDA .pt2 exports and timings: --device $dev has no CUDA (the CPU .pt2 is measured by benchmarks/bench_pt2_cpu.sh)" \
    | tee "$out/pt2_skipped.txt"
fi
rm -f "$out/$config.pth"
echo "done: $out"
