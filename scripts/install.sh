#!/usr/bin/env bash
# Create .venv and install tunesmith into it. Safe to re-run (fast when already installed).
#   EXTRAS=dev bash scripts/install.sh     # with test tools
# torch is installed first as the CPU wheel (torch==2.13.0): an unpinned torch would make pip fetch a
# multi-GB CUDA build on a CPU machine. On a GPU machine, install your CUDA torch first and set
# TUNESMITH_KEEP_TORCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if [ "${TUNESMITH_KEEP_TORCH:-0}" != "1" ] && ! python -c "import torch" >/dev/null 2>&1; then
  echo "installing torch (CPU wheel)..."
  pip install -q "torch==2.13.0"
fi
spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
echo "installing tunesmith $spec ..."
pip install -q -e "$spec"
