#!/usr/bin/env bash
# One-time setup of .venv for this checkout; safe to rerun (it only installs what is missing).
#   scripts/setup.sh          the package with ONNX Runtime (CPU)
#   scripts/setup.sh --dev    the same plus the test and lint tools
# torch is pinned first to 2.13.0 so that a CPU machine takes the CPU build instead of
# resolving an unpinned "torch" to a multi-GB CUDA wheel. On a GPU machine, install the
# torch build you want first, then `pip install -e '.[gpu,tensorrt]'` (never both cpu and gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="cpu"
[[ "${1:-}" == "--dev" ]] && extras="cpu,dev"
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
