"""Mutation testing of the core modules: which small planted bugs do the tests miss? One command, not in CI (slow).

    python benchmarks/mutation.py                       # every core module; resumes where a run stopped
    python benchmarks/mutation.py --modules numbers     # one module, every mutant tested again
    python benchmarks/mutation.py --survivors           # only the mutants that survived last time (after new tests)
    python benchmarks/mutation.py --report              # no run: rewrite the report from mutants/

Uses mutmut (``pip install mutmut==3.8.1``; installed by this script when missing), configured in
``pyproject.toml`` (``[tool.mutmut]``: the modules, the fast test files, fork isolation). mutmut copies the sources
into ``mutants/``, runs the selected tests once to learn which tests reach which function, then, one worker process
at a time (``--workers``), runs for each mutant only the tests that reach its function. A full run is about an hour
on one free core.

Writes ``benchmarks/results/mutation.json`` (per module: killed, survived, no tests, timeout; the score, killed /
tested) and ``benchmarks/results/mutation-survivors.md`` (each survivor's diff and its verdict). A verdict is read
from ``benchmarks/mutation_verdicts.json``, written by whoever read the survivor: why it is equivalent (no input
can tell it from the original) or why it is left. Verdicts are matched by function and changed line, not by
mutmut's numbering; a verdict whose mutant no longer survives is listed as stale. Last line: the total score, then
the score without the survivors whose verdict says equivalent (a second figure, never instead of the first).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VERDICTS = ROOT / "benchmarks" / "mutation_verdicts.json"
BEFORE = RESULTS / "mutation-before-tests.json"  # the scores before tests/test_numbers.py, tests/test_mutants_*.py
MUTMUT = "mutmut==3.8.1"
NOT_KILLED = ("survived", "no tests", "suspicious")


def load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text())


def core_modules() -> dict[str, str]:
    """Short name (``numbers``) -> source path, from ``[tool.mutmut] only_mutate``: one list, in pyproject.toml."""
    paths = load_toml(ROOT / "pyproject.toml")["tool"]["mutmut"]["only_mutate"]
    return {Path(p).stem: p for p in paths}


def dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def ensure_mutmut() -> Path:
    if importlib.util.find_spec("mutmut") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", MUTMUT], check=True)
    return Path(sys.executable).parent / "mutmut"


def read_results(modules: dict[str, str]) -> dict[str, dict[str, str]]:
    """Module -> mutant name -> status, from mutmut's ``mutants/<path>.meta`` files."""
    from mutmut.stats import status_by_exit_code

    results = {}
    for name, path in modules.items():
        meta = ROOT / "mutants" / f"{path}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.is_file() else {}
        results[name] = {mutant: status_by_exit_code[code] for mutant, code in codes.items()}
    return results


def run_mutmut(mutmut: Path, names: list[str], log: Path, workers: int = 1) -> None:
    (ROOT / "mutants" / "benchmarks").mkdir(parents=True, exist_ok=True)  # mutmut copies the plugin, not its folder
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    # mutant names on the command line are tested again even when they have a result; none: only untested ones
    with log.open("w") as out:
        done = subprocess.run(
            [str(mutmut), "run", "--max-children", str(workers), *names], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        sys.exit(f"mutmut failed ({done.returncode}); the end of {log}:\n" + "\n".join(tail))


def changed_line(diff: str) -> str:
    """The first line the mutant adds, stripped: with the function, what a verdict is matched on."""
    return next((line[1:].strip() for line in diff.splitlines() if line.startswith("+") and line[1:2] != "+"), "")


def is_equivalent(verdict: str | None) -> bool:
    """A verdict that says no input can tell the mutant from the original ("equivalent", "equivalent in practice",
    "equivalent for the result", ...); "left" and "out of reach" are not."""
    return bool(verdict) and verdict.startswith("equivalent")


def report(modules: dict[str, str], command: str, seconds: float | None) -> dict:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    results = read_results(modules)
    verdicts = json.loads(VERDICTS.read_text()) if VERDICTS.is_file() else []
    by_key = {(v["function"], v["changed"]): v["verdict"] for v in verdicts}
    used = set()
    summary, survivors = {}, []
    for name, statuses in results.items():
        counts = collections.Counter(statuses.values())
        tested = sum(counts.values()) - counts["not checked"] - counts["skipped"]
        caught = counts["killed"] + counts["timeout"] + counts["caught by type check"]
        summary[name] = {
            "path": modules[name],
            "mutants": len(statuses),
            **{status: counts[status] for status in sorted(counts)},
            "score": round(caught / tested, 4) if tested else None,
        }
        for mutant, status in sorted(statuses.items()):
            if status not in NOT_KILLED:
                continue
            diff = get_diff_for_mutant(mutant, path=modules[name])
            key = (mutant.rsplit("__mutmut_", 1)[0], changed_line(diff))
            used.add(key)
            survivors.append(
                {"module": name, "mutant": mutant, "status": status, "diff": diff, "verdict": by_key.get(key)}
            )
        # second figure, never instead of the first: killed / (tested - survivors whose verdict says equivalent)
        equivalent = sum(1 for s in survivors if s["module"] == name and is_equivalent(s["verdict"]))
        summary[name]["equivalent"] = equivalent
        summary[name]["score_without_equivalent"] = (
            round(caught / (tested - equivalent), 4) if tested > equivalent else None
        )
    tested = sum(s["mutants"] - s.get("not checked", 0) - s.get("skipped", 0) for s in summary.values())
    caught = sum(s.get("killed", 0) + s.get("timeout", 0) + s.get("caught by type check", 0) for s in summary.values())
    equivalent = sum(s["equivalent"] for s in summary.values())
    return {
        "tool": MUTMUT,
        "command": command,
        "seconds": round(seconds, 1) if seconds is not None else None,
        "date": time.strftime("%Y-%m-%d"),
        "modules": summary,
        "total": {
            "tested": tested,
            "caught": caught,
            "score": round(caught / tested, 4) if tested else None,
            "equivalent": equivalent,
            "score_without_equivalent": round(caught / (tested - equivalent), 4) if tested > equivalent else None,
        },
        "survivors": survivors,
        "unexplained": sum(1 for s in survivors if not s["verdict"]),
        "stale_verdicts": [v for v in verdicts if (v["function"], v["changed"]) not in used],
    }


def percent(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


def markdown(result: dict) -> str:
    lines = [
        "# Mutation testing: the survivors",
        "",
        f"`{result['command']}` ({result['tool']}, {result['date']}). A survivor is a mutant no selected test "
        "fails on (or that no selected test reaches); its verdict says why it is equivalent to the original or "
        "why it is left. Killed mutants are not listed.",
        "",
        "| module | mutants | not checked | killed | survived | no tests | timeout | score | score before "
        "| equivalent | score without equivalent |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    snapshot = json.loads(BEFORE.read_text()) if BEFORE.is_file() else {}
    before = snapshot.get("modules", {})
    for name, s in result["modules"].items():
        score = f"{s['score']:.1%}" if s["score"] is not None else "-"
        old = before.get(name, {}).get("score")
        lines.append(
            f"| `{s['path']}` | {s['mutants']} | {s.get('not checked', 0)} | {s.get('killed', 0)} | "
            f"{s.get('survived', 0)} | {s.get('no tests', 0)} | {s.get('timeout', 0)} | {score} | "
            f"{percent(old)} | {s['equivalent']} | {percent(s['score_without_equivalent'])} |"
        )
    total = result["total"]
    lines.append(
        f"| **total** | {total['tested']} tested | | {total['caught']} | | | | **{total['score']:.1%}** | | "
        f"{total['equivalent']} | {percent(total['score_without_equivalent'])} |"
    )
    lines += [
        "",
        "*Score* is killed / tested, every survivor counted. *Score without equivalent* leaves out the survivors "
        "whose verdict says no input can tell them from the original (killed / (tested - equivalent)); a verdict is "
        "a reader's argument, not a proof, so the plain score comes first.",
    ]
    if before:
        lines += ["", f"*Score before* ({BEFORE.name}): {snapshot.get('note', '')}."]
    lines += ["", f"{len(result['survivors'])} survivors, {result['unexplained']} without a verdict.", ""]
    for s in result["survivors"]:
        lines += [
            f"## `{s['mutant']}` ({s['status']})",
            "",
            f"**Verdict:** {s['verdict'] or 'none yet: read it, then add a test or a verdict'}",
            "",
            "```diff",
            s["diff"],
            "```",
            "",
        ]
    if result["stale_verdicts"]:
        lines += ["## Stale verdicts (their mutant no longer survives)", ""]
        lines += [f"- `{v['function']}`: `{v['changed']}`" for v in result["stale_verdicts"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", help="short names (numbers, arith, ...); default: every core module")
    parser.add_argument("--survivors", action="store_true", help="test again only last run's survivors")
    parser.add_argument("--report", action="store_true", help="no run: report what mutants/ holds")
    parser.add_argument("--fresh", action="store_true", help="remove mutants/ first (after a change to the code)")
    parser.add_argument("--workers", type=int, default=1, help="mutants tested at once (default 1)")
    args = parser.parse_args()

    os.chdir(ROOT)  # mutmut reads pyproject.toml and writes mutants/ in the working directory
    mutmut = ensure_mutmut()
    modules = core_modules()
    if args.modules:
        unknown = sorted(set(args.modules) - set(modules))
        if unknown:
            parser.error(f"unknown modules {unknown}; valid choices: {', '.join(modules)}")
        modules = {name: modules[name] for name in args.modules}
    if args.fresh:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)

    seconds = None
    if not args.report:
        if args.survivors:
            names = [m for statuses in read_results(modules).values() for m, s in statuses.items() if s in NOT_KILLED]
        elif args.modules:
            names = [f"{dotted(path)}.*" for path in modules.values()]
        else:
            names = []
        started = time.perf_counter()
        if names or not args.survivors:
            run_mutmut(mutmut, names, ROOT / "mutants" / "mutation-run.log", args.workers)
        seconds = time.perf_counter() - started

    result = report(modules, "python benchmarks/mutation.py " + " ".join(sys.argv[1:]), seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mutation.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "mutation-survivors.md").write_text(markdown(result))
    scores = ", ".join(f"{n} {s['score']:.1%}" for n, s in result["modules"].items() if s["score"] is not None)
    print(
        f"mutation score {result['total']['score']:.1%} ({scores}); {len(result['survivors'])} survivors, "
        f"{result['unexplained']} unexplained; without the {result['total']['equivalent']} equivalent: "
        f"{percent(result['total']['score_without_equivalent'])}"
    )


if __name__ == "__main__":
    main()
