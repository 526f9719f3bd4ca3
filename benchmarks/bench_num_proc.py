"""The CPU-only stages on one process vs several (``--num_proc``), side by side on real GSM8K problems.

    python benchmarks/bench_num_proc.py [--problems 300] [--repeats 3] [--num-proc 2] [--upstream DIR]

Upstream artifacts (problems -> cot_traces -> jsd_spans -> iaf_maps) are built once into ``--upstream`` (default: a
temporary folder): the first ``--problems`` GSM8K train problems of ``../shared/data``, their reference solutions as
CoTs, attention from the embedded teacher's first 10 layers (the presets' setting; about half an hour for 300 on 2
busy cores, so pass a folder to keep it). An upstream artifact already there is used as it is. Then, ``--repeats``
times and alternating which goes first, each CPU stage (clause_regions, op_pairs, io_tags, op_classes, bindings) is
built on a fresh copy with ``num_proc`` 1 and ``--num-proc``; each time is the stage's whole build (loading its
upstream, the map, writing Parquet and card). Reports medians per stage, the wall-clock ratios, the CPU seconds
each way (this process and its joined workers: the price of the workers), the load average while it ran, and whether
both artifacts are the same bytes (they must be). On a machine whose cores other jobs keep busy the wall-clock ratio
says little: with the kernel's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) one session's
processes share one session's slice, however many there are. Writes benchmarks/results/num_proc.json; the last line
prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mycelium_datasets.builders import BUILDERS
from mycelium_run.job import split_options

# shared/data beside the checkout or beside any folder above it (a worktree), as the tests find it
DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents[1].parents if (p / "shared" / "data").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
CPU_STAGES = [name for name, builder in BUILDERS.items() if builder.CPU_WORKERS]
UPSTREAM = [name for name in BUILDERS if name not in CPU_STAGES]


def build_upstream(folder: Path, configs: dict) -> None:
    for name in UPSTREAM:
        builder = BUILDERS[name](folder, configs[name])
        if builder.read_marker() is None:
            started = time.perf_counter()
            builder.build()
            print(f"upstream {name}: {time.perf_counter() - started:.0f} s", flush=True)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the workers, once a stage has joined them)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_cpu_stages(upstream: Path, folder: Path, configs: dict, num_proc: int) -> tuple[dict, dict, dict]:
    """Wall and CPU seconds of each CPU stage's build on a fresh copy of ``upstream``, and each artifact's file
    records."""
    shutil.copytree(upstream, folder)
    seconds, cpu, files = {}, {}, {}
    for name in CPU_STAGES:
        started, started_cpu = time.perf_counter(), cpu_seconds()
        BUILDERS[name](folder, configs[name], num_proc=num_proc).build()
        seconds[name], cpu[name] = time.perf_counter() - started, cpu_seconds() - started_cpu
        files[name] = json.loads((folder / ".mycelium" / f"{name}.json").read_text())["files"]
    shutil.rmtree(folder)
    return seconds, cpu, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=300, help="first N problems of GSM8K train")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-proc", type=int, default=2, help="compared with 1")
    parser.add_argument("--upstream", default=None, help="folder for the upstream artifacts (kept; reused)")
    parser.add_argument("--data", default=str(DATA), help="folder with gsm8k_train.jsonl")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "num_proc.json"))
    args = parser.parse_args()
    source = Path(args.data) / "gsm8k_train.jsonl"
    if not source.is_file():
        raise SystemExit(f"{source} is absent: this benchmark needs GSM8K train (../shared/data)")
    configs = split_options(
        {
            "source": str(source),
            "limit": args.problems,
            "test_fraction": 0.1,
            "cot_source": "reference",
            "first_layers": 10,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        upstream = Path(args.upstream) if args.upstream else Path(tmp) / "upstream"
        build_upstream(upstream, configs)
        rows = json.loads((upstream / ".mycelium" / "iaf_maps.json").read_text())["rows"]
        runs: dict[int, list[dict]] = {1: [], args.num_proc: []}
        cpu: dict[int, list[dict]] = {1: [], args.num_proc: []}
        same_bytes = True
        load = [os.getloadavg()[0]]
        for r in range(args.repeats):
            order = [1, args.num_proc] if r % 2 == 0 else [args.num_proc, 1]
            files = {}
            for p in order:
                seconds, cpu_s, files[p] = time_cpu_stages(upstream, Path(tmp) / f"r{r}-p{p}" / "run", configs, p)
                runs[p].append(seconds)
                cpu[p].append(cpu_s)
                load.append(os.getloadavg()[0])
                print(f"repeat {r + 1}, num_proc {p}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
            same_bytes &= files[1] == files[args.num_proc]

    def medians_of(per_run: dict[int, list[dict]]) -> dict[int, dict]:
        out = {p: {name: statistics.median(s[name] for s in per_run[p]) for name in CPU_STAGES} for p in per_run}
        for p in out:
            out[p]["all CPU stages"] = statistics.median(sum(s.values()) for s in per_run[p])
        return out

    medians, cpu_medians = medians_of(runs), medians_of(cpu)
    ratios = {name: medians[1][name] / medians[args.num_proc][name] for name in medians[1]}
    cpu_ratios = {name: cpu_medians[args.num_proc][name] / cpu_medians[1][name] for name in cpu_medians[1]}
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (noisy)",
        "load_average_1min": {"min": min(load), "max": max(load)},
        "sched_autogroup": autogroup.read_text().strip() == "1" if autogroup.is_file() else None,
        "problems": rows,
        "repeats": args.repeats,
        "num_proc": args.num_proc,
        "median_seconds": {str(p): m for p, m in medians.items()},
        "speedup": ratios,
        "median_cpu_seconds": {str(p): m for p, m in cpu_medians.items()},
        "cpu_seconds_ratio": cpu_ratios,
        "same_bytes": same_bytes,
        "seconds": {str(p): s for p, s in runs.items()},
        "cpu_seconds": {str(p): s for p, s in cpu.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    for name in medians[1]:
        print(
            f"{name}: {medians[1][name]:.1f} s on 1 process, {medians[args.num_proc][name]:.1f} s on "
            f"{args.num_proc}: {ratios[name]:.2f}x (CPU seconds {cpu_medians[1][name]:.1f} vs "
            f"{cpu_medians[args.num_proc][name]:.1f})"
        )
    print(f"1-minute load average during the run: {min(load):.1f} to {max(load):.1f} on {os.cpu_count()} cores")
    print(
        f"num_proc {args.num_proc} / 1 speed-up, medians of {args.repeats} on {rows}: "
        + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
        + f"; same bytes: {same_bytes}"
    )


if __name__ == "__main__":
    main()
