"""Resumable parts, build caching, the CLI, and generation sharded over two processes under torchrun."""

from __future__ import annotations

import json
import os

import datasets
import pytest

from mycelium_datasets.builders import ProblemsBuilder
from mycelium_datasets.problems import ProblemsConfig
from mycelium_datasets.runner import map_in_parts
from mycelium_run.cli import main

from conftest import read_artifact, run_single_and_distributed, write_jsonl

FEATURES = datasets.Features({"x": datasets.Value("int64"), "y": datasets.Value("int64")})


def square(batch, fail_flag):
    if fail_flag and os.path.exists(fail_flag) and 10 in batch["x"]:
        raise RuntimeError("interrupted")
    return {"x": batch["x"], "y": [v * v for v in batch["x"]]}


def test_map_in_parts_resumes_without_losing_or_doubling_rows(tmp_path):
    data = datasets.Dataset.from_dict({"x": list(range(25))})
    flag = tmp_path / "fail"
    flag.write_text("1")
    with pytest.raises(RuntimeError, match="interrupted"):
        map_in_parts(
            data,
            square,
            work_dir=tmp_path / "w",
            features=FEATURES,
            fn_kwargs={"fail_flag": str(flag)},
            batch_size=2,
            part_size=5,
        )
    done = sorted((tmp_path / "w").glob("*.parquet"))
    assert len(done) == 2 and not list((tmp_path / "w").glob("*.tmp*"))  # parts 0 and 1 finished, atomically
    mtimes = [p.stat().st_mtime_ns for p in done]
    flag.unlink()
    out = map_in_parts(
        data,
        square,
        work_dir=tmp_path / "w",
        features=FEATURES,
        fn_kwargs={"fail_flag": str(flag)},
        batch_size=2,
        part_size=5,
    )
    assert out["x"] == list(range(25)) and out["y"] == [v * v for v in range(25)]
    assert [p.stat().st_mtime_ns for p in done] == mtimes  # finished parts were reused, not recomputed


def test_build_is_cached_by_config(tmp_path):
    out = tmp_path / "run"
    ProblemsBuilder(out, ProblemsConfig(size=6)).build()
    marker = json.loads((out / ".mycelium" / "problems.json").read_text())
    ProblemsBuilder(out, ProblemsConfig(size=6)).build()
    assert json.loads((out / ".mycelium" / "problems.json").read_text()) == marker  # untouched: up to date
    ProblemsBuilder(out, ProblemsConfig(size=7)).build()
    marker2 = json.loads((out / ".mycelium" / "problems.json").read_text())
    assert marker2["fingerprint"] != marker["fingerprint"] and sum(marker2["rows"].values()) == 7
    assert len(list((out / "problems" / "data").glob("*.parquet"))) == len(marker2["rows"])  # old files replaced


def test_cli_build_problems_from_jsonl(tmp_path, capsys):
    src = write_jsonl(tmp_path / "p.jsonl", [{"problem": "What is 1+1?", "answer": "2"}] * 1)
    assert main(["build", "problems", "--out", str(tmp_path / "r"), "--source", str(src), "--test_fraction", "0"]) == 0
    assert "problems: train=1" in capsys.readouterr().out
    assert datasets.load_dataset(str(tmp_path / "r" / "problems"))["train"][0]["answer"] == "2"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["frobnicate"], "unknown command 'frobnicate'; valid choices: run, build"),
        (["build", "problems", "--out", "X", "--source", "gsm9k"], "valid choices: gsm_symbolic, gsm8k, math500"),
        (
            ["run", "--out", "X", "--config", "huge"],
            "unknown config 'huge'; valid choices: default, gsm8k, mwp, teacher, tiny",
        ),
        (["build", "cot_traces", "--out", "X", "--cot_source", "gpt"], "valid choices: reference, teacher"),
    ],
)
def test_cli_errors_name_the_valid_choices(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_unknown_artifact(capsys):
    with pytest.raises(SystemExit):
        main(["build", "spans", "--out", "X"])
    assert "invalid choice: 'spans'" in capsys.readouterr().err


def test_cli_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out


@pytest.mark.slow
def test_generation_sharded_over_two_processes_equals_one(tmp_path, tiny_teacher):
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": f"q{i}", "problem": f"What is {i} times 3?", "answer": str(3 * i)} for i in range(7)],
    )
    common = [
        "build",
        "cot_traces",
        "--source",
        str(src),
        "--test_fraction",
        "0",
        "--cot_source",
        "teacher",
        "--teachers",
        tiny_teacher,
        "--max_new_tokens",
        "6",
        "--batch_size",
        "1",
        "--part_size",
        "2",
        "--log_level",
        "debug",  # each part written is a debug line
    ]
    one, two, stderr = run_single_and_distributed(common, tmp_path, port=29533)
    assert "rank1" in stderr and ": wrote w002-r001-p" in stderr  # both ranks ran, each on its own shard
    a = read_artifact(one / "cot_traces")["train"]  # from disk: load_dataset would answer both from one cache entry
    b = read_artifact(two / "cot_traces")["train"]
    assert [r["id"] for r in b] == [f"q{i}" for i in range(7)]
    assert a == b


# -- mycelium run refuses problems it cannot serve, right after building them -----------------------------------------


def _records(n: int, with_solution: int, answer: bool = True) -> list[dict]:
    records = []
    for k in range(n):
        record = {"id": f"p{k}", "problem": f"Tom has {k + 2} apples and buys 4 more. How many has he?"}
        if answer:
            record["answer"] = str(k + 6)
        if k < with_solution:
            record["solution"] = f"{k + 2} + 4 = {k + 6}\n#### {k + 6}"
        records.append(record)
    return records


def test_run_refuses_problems_without_reference_cots_or_a_test_split_before_any_other_stage(tmp_path, capsys):
    from mycelium_datasets.builders import BUILDERS

    src = write_jsonl(tmp_path / "my.jsonl", _records(6, with_solution=1))
    out = tmp_path / "run"
    assert main(["run", "--source", str(src), "--out", str(out), "--test_fraction", "0"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mycelium: error:")]
    assert len(errors) == 1 and "--cot_source teacher" in errors[0] and "--test_fraction" in errors[0]
    assert (out / "problems").is_dir() and "test" not in datasets.load_dataset(str(out / "problems"))
    assert not [name for name in BUILDERS if name != "problems" and (out / name).exists()]
    assert not (out / "models").exists()


@pytest.mark.parametrize(
    "records, options, outcome",
    [
        (_records(6, with_solution=1), {"test_fraction": 0.5}, "--cot_source teacher"),
        (_records(6, with_solution=1), {"test_fraction": 0.5, "cot_source": "teacher"}, "ok"),
        (_records(10, with_solution=8), {"test_fraction": 0.5}, "warned"),  # a few missing: the others train
        (_records(6, with_solution=6), {"test_fraction": 0.0}, "--test_fraction"),
        (_records(6, with_solution=0, answer=False), {"test_fraction": 0.5}, "refused"),
        (_records(6, with_solution=1), {"test_fraction": 0.0, "students": False}, "ok"),  # the artifacts alone
    ],
    ids=["reference-cots-missing", "teacher", "a-few-missing", "no-test-split", "no-usable-row", "no-students"],
)
def test_check_problems_refuses_only_what_the_students_cannot_use(tmp_path, records, options, outcome, caplog):
    import logging

    from mycelium_datasets.problems import build_problems
    from mycelium_run.job import UnfitProblemsError, check_problems, split_options

    configs = split_options({"source": str(write_jsonl(tmp_path / "my.jsonl", records)), **options})
    problems = build_problems(configs["problems"])
    if options["test_fraction"]:
        assert {"train", "test"} <= set(problems) and len(problems["train"]) > 1  # the case is what it says
    if outcome in ("ok", "warned"):
        with caplog.at_level(logging.WARNING, logger="mycelium_run.job"):
            check_problems(problems, configs)
        assert bool([r for r in caplog.records if r.name == "mycelium_run.job"]) == (outcome == "warned")
    else:
        with pytest.raises(UnfitProblemsError, match=outcome if outcome.startswith("--") else None):
            check_problems(problems, configs)  # naming the flag that fixes it, where one does


# -- what a command prints --------------------------------------------------------------------------------------------


def test_a_build_prints_only_its_own_log_lines_by_default_and_nothing_at_warning(tmp_path):
    """A fresh process, as a user runs it: at the default --log_level every stderr line is one of this package's log
    lines (no library progress bar for a Parquet write or a dataset read back, no warning; our bars only show on a
    terminal), and at --log_level warning nothing is printed. stdout stays the command's result."""
    import re
    import subprocess
    import sys

    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{"problem": f"Tom has {i} apples and buys 2 more. How many now?", "answer": str(i + 2)} for i in range(6)],
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ours = re.compile(r"^\d\d:\d\d:\d\d \[mycelium[\w.]*\] ")
    for level, out in (("info", "info"), ("warning", "warning")):
        argv = ["build", "cot_traces", "--source", str(src), "--out", str(tmp_path / out), "--log_level", level]
        done = subprocess.run(
            [sys.executable, "-m", "mycelium_run.cli", *argv], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stderr.splitlines()
        if level == "info":
            assert lines and all(ours.match(line) for line in lines), lines  # both artifacts said what they wrote
            assert "\r" not in done.stderr  # no bar redrawn into a log file
        else:
            assert lines == []
        assert done.stdout.startswith("cot_traces: ")


def test_an_unknown_log_level_is_a_one_line_error(capsys):
    assert main(["build", "problems", "--out", "X", "--log_level", "loud"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--log_level" in err and "warning" in err


def test_the_tiny_preset_captures_the_default_presets_layers():
    """The first example (`--config tiny`) reads the teacher's first layers as the default run does, not all of them
    (three times the capture's time)."""
    from mycelium_run.job import load_preset, split_options

    tiny, default = (split_options(load_preset(name))["jsd_spans"] for name in ("tiny", "default"))
    assert tiny.first_layers == default.first_layers > 0 and tiny.layers == default.layers


def test_a_tiny_run_prints_its_result_alone_on_stdout_and_a_few_lines_on_stderr(tmp_path, tiny_teacher):
    """`mycelium run --config tiny` in a fresh process, as a user runs it (the tiny teacher captured, no students:
    those are `mycelium train`'s test in test_students.py): stdout is one JSON document, stderr a line per artifact
    at most, each one of this package's log lines (no library bar, no warning)."""
    import re
    import subprocess
    import sys

    argv = ["run", "--config", "tiny", "--capture_teacher", tiny_teacher, "--no_students", "--out", str(tmp_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mycelium_run.cli", *argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["bindings"]["train"] > 0 and "students" not in summary
    lines = done.stderr.splitlines()
    assert 0 < len(lines) < 20, lines
    assert all(re.match(r"^\d\d:\d\d:\d\d \[mycelium[\w.]*\] ", line) for line in lines), lines


@pytest.mark.parametrize(
    "argv, unknown, nearest",
    [
        (["train", "tagger", "--num_trian_epochs", "1"], "--num_trian_epochs", "--num_train_epochs"),
        (["train", "tagger", "--run_dir", "R", "--learnig_rate=0.1"], "--learnig_rate", "--learning_rate"),
        (["run", "--out", "R", "--limti", "3"], "--limti", "--limit"),
        (["build", "problems", "--out", "R", "--soruce", "gsm8k"], "--soruce", "--source"),
        (["eval", "--models", "M", "--out", "R", "--spilt", "test"], "--spilt", "--split"),
    ],
)
def test_an_unknown_option_is_one_line_naming_it_and_the_nearest_valid_one(
    argv, unknown, nearest, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and unknown in err and nearest in err
    assert "HfArgumentParser" not in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_an_argparse_error_of_the_training_options_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "tagger", "--run_dir", str(tmp_path / "R"), "--num_train_epochs", "many"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--num_train_epochs" in err
    assert not (tmp_path / "R").exists()


def test_an_unknown_student_is_an_invalid_choice_naming_the_students(capsys):
    assert main(["train", "tager"]) == 2
    err = capsys.readouterr().err
    assert "'tager'" in err and all(name in err for name in ("tagger", "classifier", "binder", "decoder"))


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "tagger", "--run_dir", "{run}"],
        ["train", "decoder", "--run_dir", "{run}"],
        ["loop", "--run_dir", "{run}"],
    ],
)
@pytest.mark.parametrize("exists", [False, True])
def test_a_command_refused_for_a_folder_without_its_inputs_writes_nothing(argv, exists, capsys, tmp_path):
    run = tmp_path / "run"
    if exists:
        run.mkdir()
    assert main([a.format(run=run) for a in argv]) == 2
    assert "is missing" in capsys.readouterr().err
    assert (list(run.iterdir()) == []) if exists else not run.exists()  # no .mycelium/lock left behind


def test_verify_fails_on_a_run_folder_with_no_artifact(tmp_path, capsys):
    (tmp_path / "run" / ".mycelium").mkdir(parents=True)  # what a refused command used to leave behind
    assert main(["verify", str(tmp_path / "run")]) != 0
    assert "no artifact" in capsys.readouterr().err


# Each command with what it needs before its options (the student to train, the artifact to build, ...).
EVERY_COMMAND = [
    ["run"],
    ["build", "problems"],
    ["show", "DIR"],
    ["train", "tagger"],
    ["solve", "a problem"],
    ["eval"],
    ["loop"],
    ["verify", "DIR"],
    ["release", "DIR"],
    ["sources"],
    ["artifacts"],
]


def test_every_command_has_one_handler():
    from mycelium_cli import COMMANDS
    from mycelium_run.cli import HANDLERS

    assert [argv[0] for argv in EVERY_COMMAND] == list(COMMANDS) == list(HANDLERS)


@pytest.mark.parametrize("argv", EVERY_COMMAND, ids=lambda argv: argv[0])
def test_every_command_refuses_an_unknown_option_in_one_line(argv, capsys, tmp_path, monkeypatch):
    """One shape for every command (mycelium_run.cli.HANDLERS): a flag it does not take is refused before anything
    runs, in one line naming the flag, exit status 2, whichever parser the command has."""
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no_such_flag_anywhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--no_such_flag_anywhere" in err, err
    assert not list(tmp_path.iterdir())
