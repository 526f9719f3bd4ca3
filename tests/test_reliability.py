"""Reliability: resume after SIGKILL at known points, determinism across processes, run folders compared on disk, and
no code from data ever executed."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from mycelium_datasets.builders import BUILDERS
from mycelium_run.job import split_options

from conftest import read_artifact, read_run, write_jsonl

PACKAGE_DIRS = [
    Path(__file__).resolve().parents[1] / d for d in ("mycelium_datasets", "mycelium_models", "mycelium_run")
]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# 12 problems; the capture in parts of two rows, from the teacher's first 10 layers as the default config does (the
# tiny preset reads all 30: three times the capture's time, for nothing these tests look at)
RUN = ["run", "--config", "tiny", "--capture_part_size", "2", "--log_level", "debug"]  # debug: each part written


def start_cli(argv: list[str], out: Path, hash_seed: int, log: Path) -> subprocess.Popen:
    """``mycelium ARGV --out OUT`` in its own process group (so that a kill reaches its workers too), with its own
    ``PYTHONHASHSEED``, logging to ``log``."""
    cmd = [sys.executable, "-m", "mycelium_run.cli", *argv, "--out", str(out)]
    env = {**ENV, "PYTHONHASHSEED": str(hash_seed)}
    with open(log, "w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(proc: subprocess.Popen, reached, what: str, timeout: float = 600) -> None:
    """SIGKILL ``proc``'s whole process group as soon as ``reached()`` is true (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"{what} was not reached in {timeout} s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


class Background:
    """A ``mycelium`` process left running while other work goes on; :meth:`folder` waits for it."""

    def __init__(self, proc: subprocess.Popen, out: Path, log: Path):
        self.proc, self.out, self.log = proc, out, log

    def folder(self, timeout: float = 900) -> Path:
        """The run folder, once the process has ended well (its log's tail when it has not)."""
        assert self.proc.wait(timeout=timeout) == 0, self.log.read_text()[-3000:]
        return self.out


def start_run(argv: list[str], out: Path, hash_seed: int) -> Background:
    """:func:`start_cli` into ``out``, logging to ``out.log`` beside it."""
    log = out.with_name(f"{out.name}.log")
    return Background(start_cli(argv, out, hash_seed, log), out, log)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, teacher_path):
    """One uninterrupted ``mycelium RUN --no_students`` with ``PYTHONHASHSEED=1``, started in the background when a
    test first asks for it: the reference that the SIGKILL test's rerun is compared with (it runs alongside the
    interrupted runs), and one of the determinism test's two processes. Both only read it. ``--no_students``: the
    comparison reads every artifact (``read_run``), the students are no artifact, and their options are no part of
    any artifact's fingerprint; the interrupted runs still train them."""
    reference = start_run([*RUN, "--no_students"], tmp_path_factory.mktemp("uninterrupted") / "run", hash_seed=1)
    yield reference
    if reference.proc.poll() is None:  # a test failed before waiting for it
        os.killpg(reference.proc.pid, signal.SIGKILL)
        reference.proc.wait(timeout=60)


def complete(out: Path, name: str) -> bool:
    return (out / ".mycelium" / f"{name}.json").is_file()


def capture_parts(out: Path, split: str) -> list[Path]:
    return sorted((out / ".mycelium" / "work" / "jsd_spans").glob(f"**/{split}/w001-r000-p*.parquet"))


@pytest.mark.slow
def test_sigkill_at_known_points_then_rerun_equals_an_uninterrupted_run_on_disk(tmp_path, uninterrupted):
    out = tmp_path / "interrupted"  # the uninterrupted reference runs alongside (the fixture started it)

    # 1. mid-split: the first part of the capture's train split is on disk, the split is not finished
    run = start_cli(RUN, out, hash_seed=2, log=tmp_path / "kill1.log")
    kill_when(run, lambda: capture_parts(out, "train"), "the first capture part")
    parts = capture_parts(out, "train")
    assert complete(out, "cot_traces") and not complete(out, "jsd_spans")
    assert 1 <= len(parts) < 5, parts  # about ten train rows in parts of two
    # 2. between artifacts: op_pairs is complete and a later artifact is not
    run = start_cli(RUN, out, hash_seed=3, log=tmp_path / "kill2.log")
    kill_when(run, lambda: complete(out, "op_pairs"), "op_pairs' completion marker")
    assert not complete(out, "bindings")
    resumed = (tmp_path / "kill2.log").read_text()
    assert f"jsd_spans/train: wrote w001-r000-p{len(parts):05d}" in resumed
    for k in range(len(parts)):
        assert f"jsd_spans/train: wrote w001-r000-p{k:05d}" not in resumed  # the parts on disk were kept, not redone
    # 3. during student training: the tagger is trained and swapped in, the classifier is training
    run = start_cli(RUN, out, hash_seed=4, log=tmp_path / "kill3.log")
    kill_when(run, lambda: (out / ".mycelium" / "work" / "models-classifier").is_dir(), "the classifier's training")
    assert (out / "models" / "tagger" / "mycelium.json").is_file() and not (out / "models" / "classifier").exists()
    tagger = (out / "models" / "tagger" / "model.safetensors").stat()

    final = start_cli(RUN, out, hash_seed=5, log=tmp_path / "final.log")
    assert final.wait(timeout=900) == 0, (tmp_path / "final.log").read_text()[-3000:]
    # nothing lost, nothing doubled, same fingerprints, same order
    assert read_run(out) == read_run(uninterrupted.folder())
    again = (out / "models" / "tagger" / "model.safetensors").stat()
    assert (again.st_ino, again.st_mtime_ns) == (tagger.st_ino, tagger.st_mtime_ns)  # not trained twice
    for kind in ("tagger", "classifier", "binder"):
        assert (out / "models" / kind / "mycelium.json").is_file(), kind
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]
    assert not leftovers, leftovers  # no half-written file or folder left behind
    assert not list((out / ".mycelium").rglob("*.parquet"))  # finished builds clean their parts


def test_same_configuration_in_two_processes_with_other_hash_seeds_is_deterministic(tmp_path, uninterrupted):
    # the other process: the same configuration as the fixture's (PYTHONHASHSEED=1), with PYTHONHASHSEED=2
    other = start_run([*RUN, "--no_students"], tmp_path / "seed2", hash_seed=2)
    assert read_run(other.folder()) == read_run(uninterrupted.folder())


def test_the_folder_comparison_fails_on_reordered_and_on_same_size_corrupted_rows(tmp_path):
    import pyarrow.parquet as pq

    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": f"q{i}", "problem": f"What is {i} times 3?", "answer": str(3 * i)} for i in range(7)],
    )
    configs = split_options({"source": str(src), "test_fraction": 0.0})
    original = tmp_path / "original"
    BUILDERS["problems"](original, configs["problems"]).build()
    (path,) = (original / "problems" / "data").glob("*.parquet")
    table = pq.read_table(path)
    changed = {
        "reordered": table.take([4, 5, 6, 0, 1, 2, 3]),  # the ranks' parts merged in the wrong order
        "corrupted": table.take([0, 2, 2, 3, 4, 5, 6]),  # q1 lost and q2 doubled: the same row count and sizes
    }
    for name, rows in changed.items():
        folder = tmp_path / name
        shutil.copytree(original, folder)
        pq.write_table(rows, folder / "problems" / "data" / path.name)  # the same file name and card header
        assert (folder / "problems" / "README.md").read_text() == (original / "problems" / "README.md").read_text()
        assert read_artifact(folder / "problems") != read_artifact(original / "problems"), name
    assert read_artifact(tmp_path / "reordered" / "problems")["train"][0]["id"] == "q4"


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
