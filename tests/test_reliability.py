"""Reliability: resume after SIGKILL at random points, determinism, and no code from data ever executed."""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from mycelium_datasets.builders import BUILDERS
from mycelium_models.job import split_options

from conftest import write_jsonl

PACKAGE_DIRS = [Path(__file__).resolve().parents[1] / d for d in ("mycelium_datasets", "mycelium_models", "builders")]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_cli(out: Path, kill_after: float | None = None) -> int:
    cmd = [sys.executable, "-m", "mycelium_models.cli", "run", "--out", str(out), "--config", "tiny"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if kill_after is None:
        return proc.wait(timeout=900)
    time.sleep(kill_after)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the verification worker too
    return proc.wait(timeout=60)


def snapshot(out: Path) -> dict:
    result = {}
    for name in BUILDERS:
        marker = json.loads((out / ".mycelium" / f"{name}.json").read_text())
        rows = {split: d.to_list() for split, d in datasets.load_dataset(str(out / name)).items()}
        result[name] = (marker["fingerprint"], rows)
    return result


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_gives_identical_artifacts(tmp_path, teacher_path):
    reference = tmp_path / "uninterrupted"
    assert run_cli(reference) == 0
    interrupted = tmp_path / "interrupted"
    rng = random.Random(7)
    for kill_after in sorted(rng.uniform(1.5, 14.0) for _ in range(3)):
        run_cli(interrupted, kill_after=kill_after)
    assert run_cli(interrupted) == 0
    assert snapshot(interrupted) == snapshot(reference)  # nothing lost, nothing doubled, same fingerprints
    leftovers = [p for p in interrupted.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]
    assert not leftovers, leftovers  # no half-written file or folder left behind
    assert not list((interrupted / ".mycelium").rglob("*.parquet"))  # finished builds clean their parts


def test_same_configuration_twice_is_deterministic(tmp_path, teacher_path):
    configs = split_options({"size": 6, "test_fraction": 0.0})
    snapshots = []
    for run in ("a", "b"):
        out = tmp_path / run
        for name in BUILDERS:
            BUILDERS[name](out, configs[name]).build()
        snapshots.append(snapshot(out))
    assert snapshots[0] == snapshots[1]


def test_code_in_data_is_never_executed(tmp_path, teacher_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    src = write_jsonl(
        tmp_path / "evil.jsonl",
        [
            {
                "id": "evil",
                "problem": f"What is {payload} + 1?",
                "answer": payload,
                "solution": f"{payload} = 3\n2 + {payload} = 5\n\\boxed{{{payload}}}\n#### {payload}",
            },
            {
                "id": "ok",
                "problem": "Tom has 3 apples and buys 4. How many?",
                "answer": "7",
                "solution": "3 + 4 = 7\n#### 7",
            },
        ],
    )
    configs = split_options({"source": str(src), "test_fraction": 0.0})
    out = tmp_path / "run"
    for name in BUILDERS:
        BUILDERS[name](out, configs[name]).build()
    assert not marker.exists()
    rows = {r["id"]: r for r in datasets.load_dataset(str(out / "op_pairs"))["train"]}
    assert rows["evil"]["validated"] is False and rows["ok"]["validated"] is True


FORBIDDEN_CALLS = {"eval", "exec", "sympify", "parse_expr", "parse_latex", "compile", "__import__"}
FORBIDDEN_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("torch", "load"), ("dill", "load"), ("dill", "loads")}


def test_package_never_calls_eval_exec_sympify_or_pickle():
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                        offenders.append(f"{path.name}:{node.lineno} {func.id}()")
                    if isinstance(func, ast.Attribute):
                        module_eval = func.attr == "eval" and not node.args  # torch's nn.Module.eval()
                        if func.attr in FORBIDDEN_CALLS - {"compile"} and not module_eval:
                            offenders.append(f"{path.name}:{node.lineno} .{func.attr}()")
                        if isinstance(func.value, ast.Name) and (func.value.id, func.attr) in FORBIDDEN_ATTRS:
                            offenders.append(f"{path.name}:{node.lineno} {func.value.id}.{func.attr}()")
                    # sympy's S("...") is sympify: a string argument would be parsed, and parsing runs eval
                    is_s = (isinstance(func, ast.Name) and func.id == "S") or (
                        isinstance(func, ast.Attribute) and func.attr == "S"
                    )
                    if is_s and node.args and not isinstance(node.args[0], ast.Constant | ast.Name | ast.Attribute):
                        offenders.append(f"{path.name}:{node.lineno} S() of an expression")
                    if is_s and any(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
                        offenders.append(f"{path.name}:{node.lineno} S() of a string")
                    for kw in node.keywords:
                        if kw.arg == "trust_remote_code" and not (
                            isinstance(kw.value, ast.Constant) and kw.value.value is False
                        ):
                            offenders.append(f"{path.name}:{node.lineno} trust_remote_code")
            for node in ast.walk(tree):  # sympy's text parsers (parse_expr, parse_latex, ...) are never imported
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
                if isinstance(node, ast.Attribute) and node.attr == "parsing":
                    names.append("sympy.parsing")
                if any(n.startswith("sympy.parsing") or n == "latex2sympy2" for n in names):
                    offenders.append(f"{path.name}:{node.lineno} imports a sympy text parser")
    assert not offenders, offenders
