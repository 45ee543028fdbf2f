#!/usr/bin/env bash
# CPU deployment, measured by acfd-bench in one run per model, as a user would:
#   1. acfd-export --fp16 --int8 --openvino of the paper network (a checkpoint of calibrated
#      random weights: latency does not depend on the values) and of the bundled demo
#      model, 640x640
#   2. acfd-bench --export-dir on each: the PyTorch training graph and folded graph, ONNX
#      Runtime fp32/fp16/int8, OpenVINO fp32/bf16/int8, batch 1 and 8, with the speed-up
#      against ONNX Runtime fp32 in the same run, timed in interleaved rounds so a machine
#      that slows down slows every artifact alike (and parity for the demo model)
#   3. for the paper network, benchmarks/check_int8_ratio.py on the same export: ONNX Runtime
#      int8 and OpenVINO int8 against ONNX Runtime fp32 through plain sessions, interleaved,
#      against the floors in benchmarks/int8_ratio_floor.json (below a floor: this script
#      exits 1 at the end, after writing every figure)
#   4. the paper's whole per-image path (decode a 1920x1080 JPEG, 3 scales, NMS) with the
#      fastest CPU artifact, against the 50 ms budget (over budget exits 1: the figures are
#      still written, and are the point)
# Usage: bash benchmarks/bench_cpu.sh OUT_DIR [--quick]   (results: OUT_DIR/*.json, *.txt, *.png)
set -euo pipefail
out=${1:?usage: bench_cpu.sh OUT_DIR [--quick]}
quick=${2:-}
cd "$(dirname "$0")/.."
bin=${BIN:-.venv/bin}
mkdir -p "$out"
config=acfd-vovnetv3-51; imgsz=(640 640); batches=1,8; repeats=3
if [[ "$quick" == "--quick" ]]; then
  config=acfd-tiny; imgsz=(192 224); batches=1,2; repeats=1
fi
# the paper network as a checkpoint, so that its training graph is measured too
"$bin/python" - "$out/paper.pth" "$config" <<'PY'
import sys, torch, acfd_deploy
from acfd_deploy.calibrate import well_conditioned
torch.manual_seed(0)
acfd_deploy.save_checkpoint(well_conditioned(acfd_deploy.build_model(sys.argv[2])), sys.argv[1])
PY
"$bin/python" -c "import json; from acfd_deploy.envinfo import environment; print(json.dumps(environment(), indent=2))" > "$out/environment.json"
ratio_rc=0
for name in paper demo; do
  model=(--model "$out/paper.pth"); [[ "$name" == demo ]] && model=()
  "$bin/acfd-export" "${model[@]}" --fp16 --int8 --openvino --imgsz "${imgsz[@]}" --out "$out/$name" 2>&1 | tee "$out/${name}_export.txt"
  parity=(); [[ "$name" == demo ]] && parity=(--parity)
  "$bin/acfd-bench" --export-dir "$out/$name" --interleave --batch "$batches" --imgsz "${imgsz[@]}" --repeats "$repeats" --no-progress "${parity[@]}" \
    --json "$out/${name}_latency.json" --plot "$out/${name}_latency.png" 2>&1 | tee "$out/${name}_latency.txt"
  if [[ "$name" == paper && "$quick" != "--quick" ]]; then
    "$bin/python" benchmarks/check_int8_ratio.py --export-dir "$out/$name" --json "$out/int8_ratio.json" 2>&1 | tee "$out/int8_ratio.txt" || ratio_rc=$?
  fi
  best=$("$bin/python" - "$out/${name}_latency.json" <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["results"] if r["batch"] == 1 and "training graph" not in r["artifact"]]
best = min(rows, key=lambda r: r["per_image_ms"])
print(best["artifact"].split(" (")[0], best["backend"], best["precision"])
PY
)
  read -r file backend precision <<< "$best"
  opts=(); [[ "$precision" == bf16 ]] && opts=(--precision bf16)
  "$bin/acfd-bench" --model "$out/$name/$file" --backend "$backend" "${opts[@]}" --ms-test --source 1920x1080 --budget-ms 50 \
    --batch 1 --repeats "$repeats" --no-progress --json "$out/${name}_ms_test.json" 2>&1 | tee "$out/${name}_ms_test.txt" || true
  rm -rf "$out/$name" "$out/$name.failed"
done
rm -f "$out/paper.pth"
echo "done: $out"
exit "$ratio_rc"
