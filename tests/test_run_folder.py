"""Run-folder integrity: fingerprints follow the code an artifact runs, damaged files heal, one writer at a time.

Every comparison reads the Parquet files on disk (``load_dataset`` caches a local folder by its card and file names,
not by content, so it would compare a folder with itself).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.pipeline import build, build_artifacts, verify_folder
from mycelium_datasets.run_folder import ArtifactDamagedError, RunFolderBusyError, RunLock, code_closure
from mycelium_run.cli import main as cli_main
from mycelium_run.job import split_options

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"size": 6, "test_fraction": 0.34, "cot_source": "reference"}
CLI_OPTIONS = ["--size", "6", "--test_fraction", "0.34", "--cot_source", "reference"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def rows_on_disk(out: Path, name: str) -> dict[str, list[dict]]:
    """One artifact's rows by split as written: each Parquet file its marker records, read with pyarrow, in order."""
    marker = json.loads((out / ".mycelium" / f"{name}.json").read_text())
    files = sorted(rel for rel in marker["files"] if rel.startswith("data/"))
    return {rel.split("/")[1].split("-")[0]: pq.read_table(out / name / rel).to_pylist() for rel in files}


def on_disk(out: Path) -> dict:
    """Every artifact's fingerprint and rows as written."""
    return {name: (markers(out)[name]["fingerprint"], rows_on_disk(out, name)) for name in BUILDERS}


def markers(out: Path) -> dict:
    return {name: json.loads((out / ".mycelium" / f"{name}.json").read_text()) for name in BUILDERS}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, teacher_path) -> Path:
    """The data stages of a small real run (6 gsm_symbolic problems, reference CoTs, the embedded teacher)."""
    out = tmp_path_factory.mktemp("finished")
    build_artifacts(out, split_options(OPTIONS))
    return out


def copy_run(finished: Path, dest: Path) -> Path:
    shutil.copytree(finished, dest)
    return dest


def data_file(out: Path, name: str) -> Path:
    return next((out / name / "data").glob("train-*.parquet"))


# -- 1. the fingerprint covers the code the artifact runs -------------------------------------------------------------


def test_code_closure_follows_imports_transitively():
    closure = code_closure("mycelium_datasets.builders.problems")
    # builders/problems.py imports problems.py, which imports answers.py (normalize_gold writes the answer column)
    assert "mycelium_datasets.answers" in closure and "mycelium_datasets.problems" in closure
    assert "mycelium_datasets.dag" not in closure  # the student sets' helper is not problems' code
    assert "mycelium_datasets.dag" in code_closure("mycelium_datasets.builders.student_sets")


def _package_copy(tmp: Path) -> Path:
    """The packages as importable source in ``tmp``."""
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "mycelium_datasets", tmp / "mycelium_datasets", ignore=skip)
    shutil.copytree(ROOT / "mycelium_models", tmp / "mycelium_models", ignore=skip)
    shutil.copytree(ROOT / "mycelium_run", tmp / "mycelium_run", ignore=skip)
    return tmp


SOURCE_HASHES = """
import json, sys
import mycelium_datasets
from mycelium_datasets.builders import BUILDERS
assert mycelium_datasets.__file__.startswith(sys.argv[1]), mycelium_datasets.__file__  # the edited copy runs
print(json.dumps({name: builder(sys.argv[1]).source_hash() for name, builder in BUILDERS.items()}))
"""

REBUILD = """
import json, sys
from mycelium_datasets.pipeline import build_artifacts
from mycelium_run.job import split_options
build_artifacts(sys.argv[2], split_options(json.loads(sys.argv[3])))
"""


def _in_copy(package: Path, script: str, *args: str) -> str:
    env = {**ENV, "PYTHONPATH": str(package)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(package), *args],
        env=env,
        cwd=package,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_editing_a_helper_rebuilds_exactly_the_artifacts_that_run_it(tmp_path, finished):
    package = _package_copy(tmp_path / "pkg")
    before = json.loads(_in_copy(package, SOURCE_HASHES).splitlines()[-1])
    with open(package / "mycelium_datasets" / "clauses.py", "a") as f:
        f.write("\nEDITED = True  # code: a comment alone changes no hash (tests/test_versions.py)\n")
    after = json.loads(_in_copy(package, SOURCE_HASHES).splitlines()[-1])
    assert {n for n in before if before[n] != after[n]} == {"clause_regions", "op_pairs"}

    # a real rerun with another helper edited: the student sets' code changes, nothing upstream of them is rebuilt
    with open(package / "mycelium_datasets" / "dag.py", "a") as f:
        f.write("\nEDITED = True\n")
    run = copy_run(finished, tmp_path / "run")
    old = markers(run)
    _in_copy(package, REBUILD, str(run), json.dumps(OPTIONS))
    new = markers(run)
    rebuilt = {n for n in BUILDERS if new[n]["completed_at"] != old[n]["completed_at"] or new[n] != old[n]}
    # clause_regions/op_pairs by the clauses.py edit (and the student sets after them), the student sets by dag.py
    assert rebuilt == {"clause_regions", "op_pairs", "io_tags", "op_classes", "bindings"}
    for name in ("problems", "cot_traces", "jsd_spans", "iaf_maps"):
        assert new[name] == old[name]
    assert on_disk(run)["op_pairs"][1] == on_disk(finished)["op_pairs"][1]  # an unused name changes no row


# -- 2. a folder heals ------------------------------------------------------------------------------------------------


def test_a_deleted_or_truncated_file_is_rebuilt_with_one_warning(tmp_path, finished, caplog):
    run = copy_run(finished, tmp_path / "run")
    missing = data_file(run, "op_pairs")
    missing.unlink()
    truncated = data_file(run, "io_tags")
    truncated.write_bytes(truncated.read_bytes()[:100])
    report = verify_folder(run)
    assert report["op_pairs"] == f"data/{missing.name} is missing"
    assert report["io_tags"].startswith(f"data/{truncated.name} has 100 bytes")
    assert report["bindings"] is None
    with caplog.at_level(logging.WARNING, logger="mycelium_datasets"):
        build_artifacts(run, split_options(OPTIONS))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    written = markers(finished)["io_tags"]["files"][f"data/{truncated.name}"]["size"]
    assert warnings == [
        f"op_pairs: data/{missing.name} is missing; rebuilding it",
        f"io_tags: data/{truncated.name} has 100 bytes, {written} were written; rebuilding it",
    ]
    assert on_disk(run) == on_disk(finished)
    assert all(problem is None for problem in verify_folder(run).values())


def test_a_flipped_byte_is_found_by_verify_and_rebuilt(tmp_path, finished, capsys):
    run = copy_run(finished, tmp_path / "run")
    path = data_file(run, "bindings")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 can tell
    path.write_bytes(bytes(data))
    assert BUILDERS["bindings"](run).damage(verify=False) is None
    assert cli_main(["verify", str(run)]) == 1
    out, err = capsys.readouterr()
    assert f"bindings        data/{path.name} differs from what was written (sha256)" in out
    assert "1 damaged (bindings)" in err
    with pytest.raises(ArtifactDamagedError, match=r"^bindings in .* is damaged \(data/.*\(sha256\)\); rerun without"):
        build(run, "bindings", split_options(OPTIONS), verify=True, rebuild=False)
    assert cli_main(["build", "bindings", "--out", str(run), "--verify", "--no_rebuild", *CLI_OPTIONS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bindings in" in err and "Traceback" not in err
    build_artifacts(run, split_options(OPTIONS), verify=True)
    assert on_disk(run) == on_disk(finished)
    assert cli_main(["verify", str(run)]) == 0


def test_a_run_folder_loads_one_artifact_at_a_time(tmp_path, finished):
    """A run folder holds one dataset per artifact: its card names each as a configuration, so
    ``load_dataset(run, name)`` gives the artifact's own rows, schema and info, and ``load_dataset(run)`` alone stops
    at once naming the artifacts to choose from instead of failing to read every Parquet file as one dataset."""
    import datasets

    with pytest.raises(ValueError) as error:
        datasets.load_dataset(str(finished))
    assert all(repr(name) in str(error.value) for name in BUILDERS)
    for name in BUILDERS:
        loaded = datasets.load_dataset(str(finished), name)
        alone = datasets.load_dataset(str(finished / name))
        assert {split: d.to_list() for split, d in loaded.items()} == rows_on_disk(finished, name)
        for split, d in loaded.items():
            assert d.features == alone[split].features and d.info.version == alone[split].info.version
            assert d.info.license == alone[split].info.license != ""
    # the card follows the folder: a rebuilt artifact's new files are the ones its configuration names
    run = copy_run(finished, tmp_path / "run")
    build(run, "problems", split_options({**OPTIONS, "seed": 7}))
    problems = datasets.load_dataset(str(run), "problems")
    assert {split: d.to_list() for split, d in problems.items()} == rows_on_disk(run, "problems")
    assert rows_on_disk(run, "problems") != rows_on_disk(finished, "problems")


def test_the_report_names_the_models_as_they_are_typed_from_where_the_run_started(tmp_path, monkeypatch):
    """The report's ``from_pretrained`` path is the one to type next: from the working folder of ``mycelium run
    --out runs/demo`` it is ``runs/demo/models``; a run folder outside the working folder is named from its parent,
    never by this machine's absolute path."""
    from mycelium_run.report import write_run_report

    run = tmp_path / "repo" / "runs" / "demo"
    (run / "models" / "tagger").mkdir(parents=True)
    (run / "models" / "tagger" / "metrics.json").write_text(json.dumps({"eval_f1": 0.5}))
    monkeypatch.chdir(tmp_path / "repo")
    text = write_run_report("runs/demo").read_text()
    assert 'from_pretrained("runs/demo/models")' in text
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    text = write_run_report(run).read_text()
    assert 'from_pretrained("demo/models")' in text and str(tmp_path) not in text


def test_verify_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli_main(["verify", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


# -- 3. one writer at a time ------------------------------------------------------------------------------------------


def _cli(out: Path, *extra: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mycelium_run.cli", "build", "bindings", "--out", str(out), *CLI_OPTIONS, *extra]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)


HOLD = "import sys; from mycelium_datasets.run_folder import RunLock; lock = RunLock(sys.argv[1]); lock.__enter__(); "
HOLD += "print('held', flush=True); sys.stdin.readline()"


def _holder(run: Path) -> subprocess.Popen:
    """A process that takes the run folder's lock and keeps it until its stdin is closed (or it is killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _partial(finished: Path, dest: Path) -> Path:
    """A copy of the finished run without its last four artifacts: a writer has real work to do."""
    run = copy_run(finished, dest)
    for name in ("op_pairs", "io_tags", "op_classes", "bindings"):
        shutil.rmtree(run / name)
        (run / ".mycelium" / f"{name}.json").unlink()
    return run


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not (path.is_file() and text in path.read_text()):
        assert proc.poll() is None, path.read_text()[-3000:] if path.is_file() else "no output"
        assert time.time() < deadline, f"never saw {text!r} in {path}"
        time.sleep(0.1)


def test_two_writers_one_waits_and_the_folder_is_as_one_run(tmp_path, finished):
    run = _partial(finished, tmp_path / "run")
    holder = _holder(run)
    info = json.loads((run / ".mycelium" / "lock.json").read_text())
    assert info["pid"] == holder.pid
    busy = _cli(run, "--no_wait")
    _, err = busy.communicate(timeout=300)
    assert busy.returncode == 2
    assert err.strip().splitlines() == [
        f"mycelium: error: {run} is being written by pid {holder.pid} on {info['host']} "
        f"(`{info['command']}`, since {info['since']}); wait for it, or drop --no_wait to queue"
    ]
    # two real writers queue behind the holder; when it lets go, one builds and the other finds the work done
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    writers = [_cli(run, stderr=open(log, "w")) for log in logs]
    for log, writer in zip(logs, writers):
        _wait_for(log, f"waiting for {run}: it is being written by pid {holder.pid}", writer)
    holder.stdin.close()
    holder.wait(timeout=60)
    for writer in writers:
        assert writer.wait(timeout=600) == 0, [log.read_text()[-2000:] for log in logs]
    texts = [log.read_text() for log in logs]
    for name in ("op_pairs", "io_tags", "op_classes", "bindings"):
        assert sum(text.count(f"wrote {run}/{name}:") for text in texts) == 1, name  # built once, not twice
    assert on_disk(run) == on_disk(finished)
    assert not (run / ".mycelium" / "lock.json").exists()


def test_a_killed_holder_does_not_block_the_next_run(tmp_path, finished):
    run = _partial(finished, tmp_path / "run")
    log = tmp_path / "first.log"
    first = _cli(run, stderr=open(log, "w"))
    _wait_for(log, "wrote", first)  # killed mid-run, holding the lock, with part of the work written
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    nxt = _cli(run, "--no_wait")
    _, err = nxt.communicate(timeout=600)
    assert nxt.returncode == 0, err[-3000:]
    assert on_disk(run) == on_disk(finished)


def test_the_lock_is_reentrant_and_readers_take_none(tmp_path, finished):
    run = copy_run(finished, tmp_path / "run")
    with RunLock(run):
        with RunLock(run, wait=False):  # a run that builds its artifacts takes the same lock again
            build_artifacts(run, split_options(OPTIONS), wait=False)  # up to date: reads and returns
        reader = subprocess.run(
            [sys.executable, "-m", "mycelium_run.cli", "verify", str(run)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert reader.returncode == 0, reader.stderr[-2000:]
        writer = subprocess.run(
            [sys.executable, "-c", "import sys; from mycelium_datasets.run_folder import RunLock; "
             "RunLock(sys.argv[1], wait=False).__enter__()", str(run)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert writer.returncode == 1 and "RunFolderBusyError" in writer.stderr
    with RunLock(run, wait=False):  # released: free again
        pass


def test_no_wait_names_the_holder_in_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mycelium_datasets.run_folder import RunLock; "
         "lock = RunLock(sys.argv[1]); lock.__enter__(); print('held', flush=True); time.sleep(120)", str(tmp_path)],
        env=ENV, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusyError, match=rf"is being written by pid {holder.pid} on "):
            with RunLock(tmp_path, wait=False):
                pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
    with RunLock(tmp_path, wait=False):  # the kernel released the killed holder's lock
        pass
