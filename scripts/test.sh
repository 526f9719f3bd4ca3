#!/usr/bin/env bash
# The test command: a fresh virtual environment, a fresh install, then the whole suite, offline.
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TEST_VENV:-$here/.venv-test}"
FRESH="${FRESH:-1}" bash "$here/scripts/install.sh" "$venv" test
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
