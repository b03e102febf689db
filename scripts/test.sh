#!/usr/bin/env bash
# One command from a fresh clone: install with test tools, then lint, check import layers, run tests.
#   bash scripts/test.sh                 # everything CI runs
#   bash scripts/test.sh -k templates    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
echo "== ruff"; ruff check src tests benchmarks examples
echo "== import layers"; lint-imports
echo "== pytest"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -m pytest -q "$@"
