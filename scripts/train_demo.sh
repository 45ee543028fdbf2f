#!/usr/bin/env bash
# Reproduce the bundled demo model, acfd_deploy/assets/acfd-tiny-demo.pth, from nothing:
#   1. acfd-train makes 2,000 synthetic training and 200 validation images (seed 0) and
#      trains acfd-tiny on them (CPU; about 45 minutes on 2 idle cores);
#   2. the best epoch (validation AP50) is saved as weights + config only, with its recipe;
#   3. AP50 is measured on 200 held-out synthetic images (seed 4242, never trained on).
# Usage: scripts/train_demo.sh [RUN_DIR] [WEIGHTS_OUT]   (defaults: runs/demo, acfd_deploy/assets/acfd-tiny-demo.pth)
# QUICK=1 runs every step on a handful of tiny images in seconds (the test suite does, so
# this script cannot rot); BIN overrides the folder of the commands (default .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${1:-runs/demo}
WEIGHTS=${2:-acfd_deploy/assets/acfd-tiny-demo.pth}
RECIPE=(--synthetic 2000 --synth-size 320 320 --config acfd-tiny --imgsz 256 --epochs 16 --milestones 11 14
        --batch 8 --lr 0.02 --warmup-iters 200 --workers 1 --seed 0)
HELDOUT=(--num 200 --seed 4242 --size 320 320)
if [[ "${QUICK:-}" == 1 ]]; then
  RECIPE=(--synthetic 20 --synth-size 160 160 --config acfd-tiny --imgsz 160 --epochs 1 --batch 4
          --max-iters-per-epoch 2 --workers 0 --seed 0 --no-progress)
  HELDOUT=(--num 4 --seed 4242 --size 160 160)
fi

start=$(date +%s)
"$BIN/acfd-train" "${RECIPE[@]}" --out "$RUN"
train_s=$(( $(date +%s) - start ))

"$BIN/python" - "$RUN" "$WEIGHTS" "$train_s" "${RECIPE[*]}" <<'EOF'
import csv, os, sys
import acfd_deploy
from acfd_deploy.envinfo import cpu_model
run, weights, seconds, recipe = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
log = list(csv.DictReader(open(f"{run}/log.csv")))
best = max(log, key=lambda r: float(r["val_ap"]))
model = acfd_deploy.load_model(f"{run}/best.pth")  # weights and config only: no optimizer state
acfd_deploy.save_checkpoint(model, weights, extra={"provenance": {
    "recipe": f"acfd-train {recipe}",
    "data": "synthetic cartoon faces from acfd_deploy.data.synth (not iCartoonFace)",
    "epoch": int(best["epoch"]), "val_ap50": float(best["val_ap"]),
    "train_seconds": seconds, "machine": f"{cpu_model()}, {os.cpu_count()} cores, CPU only",
}})
print(f"saved {weights}: epoch {best['epoch']} of {len(log)}, validation AP50 {float(best['val_ap']):.3f}, trained in {seconds} s")
EOF

"$BIN/acfd-synth" --out "$RUN/heldout" "${HELDOUT[@]}"
size=("${HELDOUT[@]: -2}")
"$BIN/acfd-eval" --gt "$RUN/heldout/gt.csv" --images "$RUN/heldout/images" --model "$WEIGHTS" --imgsz "${size[@]}" \
    --no-progress --json "$RUN/heldout.json" --plot "$RUN/heldout-pr.png"
