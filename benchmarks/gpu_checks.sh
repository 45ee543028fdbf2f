#!/usr/bin/env bash
# Every GPU check and benchmark in one run, for a session that is lent a GPU machine:
#   bash benchmarks/gpu_checks.sh OUT_DIR [--quick]
# 1. the GPU tests (parity on CUDA in fp32 and fp16, CUDA graphs) - pytest -m gpu
# 2. the paper network (calibrated random weights, docs/design.md#well-conditioned-weights) at 640x640:
#    PyTorch training graph fp32 vs folded fp32 / fp16 / fp16 + CUDA graphs, batch 1..32
# 3. the multi-scale test of a 1920x1080 image (3 scales + NMS) against the 50 ms budget
# Results: OUT_DIR/*.json, *.png, *.txt. --quick: acfd-tiny and small sizes (a CPU dry run).
set -euo pipefail
out=${1:?usage: gpu_checks.sh OUT_DIR [--quick]}
quick=${2:-}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
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
rm -f "$out/$config.pth"
echo "done: $out"
