"""The CPU-only stages on several processes (``num_proc``): the same artifacts, bytes and fingerprints as one process;
a run resumed with another ``num_proc`` rebuilds nothing; workers load spaCy once each; a failing worker is an error.

Every comparison reads the run folders from disk (``conftest.read_run``), never through ``load_dataset``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
from pathlib import Path

import datasets
import pytest

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.pipeline import build_artifacts
from mycelium_datasets.runner import WorkerDiedError, map_batches
from mycelium_run.cli import main as cli_main
from mycelium_run.job import split_options

from conftest import read_run

CPU_STAGES = [name for name, builder in BUILDERS.items() if builder.CPU_WORKERS]
UPSTREAM = [name for name in BUILDERS if name not in CPU_STAGES]


def markers(out: Path) -> dict:
    return {name: json.loads((out / ".mycelium" / f"{name}.json").read_text()) for name in BUILDERS}


@pytest.fixture(scope="module")
def configs(tiny_teacher) -> dict:
    # 160 gsm_symbolic problems: about 130 in train, so each CPU stage's train split is 2-3 batches of 64 and really
    # goes to two workers; attention from the tiny random teacher (seconds; the CPU stages do not care whose it is)
    return split_options(
        {"size": 160, "seed": 1, "test_fraction": 0.2, "cot_source": "reference", "capture_teacher": tiny_teacher}
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, configs) -> tuple[Path, Path]:
    """Two run folders from the same upstream artifacts: the CPU stages built on one process and on two."""
    root = tmp_path_factory.mktemp("num-proc")
    for name in UPSTREAM:
        BUILDERS[name](root / "base", configs[name]).build()
    # same folder name: a card's usage snippet names the run folder
    one, two = shutil.copytree(root / "base", root / "1" / "run"), shutil.copytree(root / "base", root / "2" / "run")
    build_artifacts(one, configs)
    build_artifacts(two, configs, num_proc=2)
    return one, two


def test_cpu_stages_on_two_processes_equal_one(runs):
    one, two = runs
    assert CPU_STAGES == ["clause_regions", "op_pairs", "io_tags", "op_classes", "bindings"]
    first, second = read_run(one), read_run(two)
    for name in CPU_STAGES:
        assert first[name] == second[name], name  # same fingerprint, rows in the same order, every column
    for name in ("clause_regions", "op_pairs", "io_tags"):  # more than one batch of 64: two workers really ran
        assert len(first[name][1]["train"]) > 64, name
    # drops and statuses are compared too (seed 1: three of its 160 reference CoTs do not validate)
    statuses = [r["op_status"] for rows in first["op_pairs"][1].values() for r in rows]
    assert "validated" in statuses and len(set(statuses)) > 1
    a, b = markers(one), markers(two)
    for name in CPU_STAGES:
        assert a[name]["files"] == b[name]["files"], name  # the same bytes: sizes and sha256 of Parquet and card
        assert a[name]["config"] == b[name]["config"] and "num_proc" not in json.dumps(a[name]["config"])
    assert "num_proc" not in (two / "op_pairs" / "README.md").read_text()


def test_a_run_resumed_with_another_num_proc_rebuilds_nothing(runs, configs, caplog):
    _, two = runs
    before = markers(two)
    with caplog.at_level("INFO", logger="mycelium_datasets.builders.base"):
        build_artifacts(two, configs)  # built with num_proc=2, resumed with the default
        build_artifacts(two, configs, num_proc=3)
    assert markers(two) == before  # same fingerprints, nothing rewritten (completed_at, files)
    up_to_date = [r.getMessage() for r in caplog.records if "up to date" in r.getMessage()]
    assert len(up_to_date) == 2 * len(BUILDERS)


# -- map_batches: what each worker loads, and what a failing worker gives ---------------------------------------------


def spacy_loads(batch: dict) -> dict:
    """Per row: the process it ran in, how many spaCy pipelines that process had loaded after its rows, and which
    pipeline object it used."""
    from mycelium_datasets.defaults import load_spacy

    nlp = load_spacy(None)
    docs = list(nlp.pipe(batch["text"]))
    n = len(docs)
    return {
        "text": batch["text"],
        "pid": [os.getpid()] * n,
        "loads": [load_spacy.cache_info().misses] * n,
        "nlp": [id(nlp)] * n,
    }


@pytest.mark.parametrize("preload", [False, True])
def test_each_worker_loads_spacy_once_or_shares_the_callers(preload):
    from mycelium_datasets.defaults import load_spacy

    load_spacy.cache_clear()  # nothing loaded before the map, so each load is counted
    data = datasets.Dataset.from_dict({"text": [f"Tom has {k} apples and buys {k + 1} more." for k in range(24)]})
    features = datasets.Features({name: datasets.Value("int64") for name in ("pid", "loads", "nlp")})
    features = datasets.Features({"text": datasets.Value("string"), **features})
    out = map_batches(
        data,
        spacy_loads,
        batch_size=4,
        features=features,
        num_proc=2,
        preload=functools.partial(load_spacy, None) if preload else None,
    )
    assert out["text"] == data["text"]
    pids = sorted(set(out["pid"]))
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, three batches each
    assert set(out["loads"]) == {1}  # one load per process, at its first batch (or the caller's), never per row
    if preload:  # the caller loaded it before forking: both workers use that very object
        assert load_spacy.cache_info().misses == 1 and set(out["nlp"]) == {id(load_spacy(None))}
    else:
        assert load_spacy.cache_info().misses == 0  # the caller loaded nothing: each worker loaded its own


def fail_on_row(batch: dict, *, bad: int) -> dict:
    if bad in batch["x"]:
        raise ValueError(f"row {bad} is bad")
    return batch


def die_on_row(batch: dict, *, bad: int) -> dict:
    if bad in batch["x"]:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OS does to a process out of memory
    return batch


FEATURES = datasets.Features({"x": datasets.Value("int64")})


@pytest.mark.parametrize(
    ("function", "error", "message"),
    [(fail_on_row, ValueError, "row 13 is bad"), (die_on_row, WorkerDiedError, "worker process died")],
)
def test_a_failing_worker_is_an_error_not_a_hang(function, error, message):
    data = datasets.Dataset.from_dict({"x": list(range(20))})
    with pytest.raises(error, match=message):
        map_batches(data, function, batch_size=4, features=FEATURES, fn_kwargs={"bad": 13}, num_proc=2, desc="t")
    assert map_batches(data, fail_on_row, batch_size=4, features=FEATURES, fn_kwargs={"bad": -1}, num_proc=2)[
        "x"
    ] == list(range(20))


def verdicts(batch: dict) -> dict:
    from mycelium_datasets.answers import answers_match

    return {**batch, "match": [answers_match(p, g, timeout=60).match for p, g in zip(batch["pred"], batch["gold"])]}


def test_workers_forked_from_a_process_with_a_verification_worker_start_their_own():
    """A worker forked after this process started its math-verify worker must not use that one (its pipe and
    process are the parent's): it starts its own, and the parent's still answers afterwards."""
    from mycelium_datasets.answers import answers_match

    assert answers_match("\\sqrt{4}", "2", timeout=60).method == "math_verify"  # the parent's worker is running
    data = datasets.Dataset.from_dict({"pred": ["\\sqrt{9}", "\\frac{1}{3}"] * 2, "gold": ["3", "0.5"] * 2})
    features = datasets.Features({**data.features, "match": datasets.Value("bool")})
    out = map_batches(data, verdicts, batch_size=1, features=features, num_proc=2)
    assert out["match"] == [True, False, True, False]
    assert answers_match("\\sqrt{16}", "4", timeout=60).match


def test_cli_num_proc(tmp_path, capsys):
    assert cli_main(["build", "problems", "--out", str(tmp_path), "--size", "4", "--num_proc", "0"]) == 2
    assert "--num_proc must be positive" in capsys.readouterr().err
    assert cli_main(["build", "problems", "--out", str(tmp_path), "--size", "4", "--num_proc", "2"]) == 0
    with pytest.raises(SystemExit):
        cli_main(["build", "--help"])
    assert "clause_regions, op_pairs, io_tags, op_classes, bindings" in " ".join(capsys.readouterr().out.split())
