#!/usr/bin/env bash
# One command from a fresh clone: install, then fine-tune the bundled Gemma 3 270M on the quickstart
# data and report base vs tuned on the held-out split.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/tunesmith train examples/quickstart.yaml "$@"
