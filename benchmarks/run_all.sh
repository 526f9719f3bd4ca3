#!/usr/bin/env bash
# Run every benchmark with the project's virtual environment (bash scripts/install.sh first); results go to
# benchmarks/results/*.json and each prints its ratios on its last line. Mutation testing (benchmarks/mutation.py, about
# an hour) is run on its own.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for bench in "$here"/benchmarks/bench_*.py; do
    echo "== $(basename "$bench")"
    "$py" "$bench"
done
