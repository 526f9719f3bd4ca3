"""How long ``mycelium`` takes before it answers: each command line in a fresh process, median of ``--repeats``.

    python benchmarks/bench_cli_startup.py [--repeats 5]

Each case is run as a user runs it (the ``mycelium`` script beside this Python, else ``python -m mycelium_cli``)
from a temporary folder, so nothing is written into the checkout; its exit status is recorded with its time. The
last case, ``import mycelium_run.cli``, is what every command paid before the entry point moved to
``mycelium_cli`` (see its docstring): the floor of any command whose handler runs. Reports the load average while
it ran (on a machine whose cores other jobs keep busy, every figure grows with it). Writes
benchmarks/results/cli_startup.json; the last line prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "cli_startup.json"
CASES = {
    "mycelium --help": ["--help"],
    "mycelium (no command)": [],
    "mycelium trian (unknown command)": ["trian"],
    "mycelium train tager (unknown student)": ["train", "tager"],
    "mycelium train tagger --num_trian_epochs 1": ["train", "tagger", "--num_trian_epochs", "1"],
}


def command() -> list[str]:
    script = Path(sys.executable).with_name("mycelium")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mycelium_cli"]


def time_once(argv: list[str], cwd: str) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = {name: command() + argv for name, argv in CASES.items()}
    cases["python -c 'import mycelium_run.cli'"] = [sys.executable, "-c", "import mycelium_run.cli"]
    results = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cwd:
        for name, argv in cases.items():
            runs = [time_once(argv, cwd) for _ in range(args.repeats)]
            seconds = [s for s, _ in runs]
            results[name] = {
                "median_s": round(statistics.median(seconds), 3),
                "min_s": round(min(seconds), 3),
                "max_s": round(max(seconds), 3),
                "exit_status": sorted({rc for _, rc in runs}),
            }
            print(f"{name}: {results[name]['median_s']:.2f} s (median of {args.repeats})", flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "cases": results,
                "repeats": args.repeats,
                "command": " ".join(Path(c).name for c in command()),
                "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                "cpus": os.cpu_count(),
                "machine": platform.platform(),
                "python": platform.python_version(),
                "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
            indent=2,
        )
        + "\n"
    )
    print("; ".join(f"{name}: {r['median_s']:.2f} s" for name, r in results.items()))


if __name__ == "__main__":
    main()
