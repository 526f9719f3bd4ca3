#!/usr/bin/env bash
# The main job on the embedded default: install into .venv, then `mycelium run`.
#   bash scripts/main.sh [mycelium run args...]      (default: --out runs/default)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$here/.venv}"
bash "$here/scripts/install.sh" "$venv"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cd "$here"
if [ "$#" -eq 0 ]; then set -- --out runs/default; fi
exec "$venv/bin/mycelium" run "$@"
