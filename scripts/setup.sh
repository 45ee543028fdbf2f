#!/usr/bin/env bash
# One-time setup of .venv for this checkout; safe to rerun (it only installs what is missing).
#   scripts/setup.sh           the package with ONNX Runtime (CPU)
#   scripts/setup.sh --serve   the same plus Triton serving (acfd-serve) and OpenVINO
#   scripts/setup.sh --dev     all of the above plus the test and lint tools (what CI runs)
#   scripts/setup.sh --failover  --serve plus Debian's haproxy, for benchmarks/serve_failover.py
#                              and its test (apt-get: needs root; nothing else uses haproxy)
# torch is pinned first to 2.13.0 so that a CPU machine takes the CPU build instead of
# resolving an unpinned "torch" to a multi-GB CUDA wheel. On a GPU machine, install the
# torch build you want first, then `pip install -e '.[gpu,tensorrt]'` (never both cpu and gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
extras="cpu"
case "$mode" in
  "") ;;
  --serve) extras="cpu,openvino,serve" ;;
  --dev) extras="cpu,openvino,serve,dev" ;;
  --failover) extras="cpu,openvino,serve" ;;
  *) echo "usage: scripts/setup.sh [--serve|--dev|--failover]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
"${pip[@]}" --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" -e ".[${extras}]"
if [[ "$extras" == *serve* ]]; then
  # the Triton server binary and its Python backend; --no-deps keeps numpy 2 in the venv
  # (nvidia-pytriton pins numpy<2). The backend's stub gets its own numpy<2, outside the
  # venv, once (acfd_deploy.serve.stubenv explains why).
  .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('pytriton') is None)" \
    || "${pip[@]}" --no-deps "nvidia-pytriton==0.7.0"
  .venv/bin/python -m acfd_deploy.serve.stubenv >/dev/null 2>&1 || .venv/bin/python -m acfd_deploy.serve.stubenv --install >/dev/null
fi
if [[ "$mode" == --failover ]] && ! command -v haproxy >/dev/null && [[ ! -x /usr/sbin/haproxy ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/setup.sh --failover: haproxy is missing and installing it needs root: sudo apt-get install -y haproxy" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
# AOTInductor packages (acfd-export --pt2) are compiled C++: say so where no compiler is
# found, without failing a setup that does not need them
if ! command -v "${CXX:-g++}" >/dev/null 2>&1 && ! command -v c++ >/dev/null 2>&1; then
  echo "note: no C++ compiler (${CXX:-g++}) found: everything works except acfd-export --pt2 (AOTInductor compiles C++);" \
    "install one with: sudo apt-get install g++ (or dnf install gcc-c++, or set CXX)" >&2
fi
