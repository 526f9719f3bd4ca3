"""cot_traces: reference CoTs, real generation with the embedded teacher, truncation, the teacher cascade."""

from __future__ import annotations

import datasets
import pytest

from mycelium_datasets.builders import CotTracesBuilder, ProblemsBuilder, load_artifact
from mycelium_datasets.cot_traces import FEATURES, CotTracesConfig, build_cot_traces, clean_reference
from mycelium_datasets.problems import ProblemsConfig, build_problems

from conftest import shared_file, write_jsonl


def test_clean_reference_removes_annotations_and_keeps_them():
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
    cot, annotations = clean_reference(solution)
    assert cot == "Natalia sold 48/2 = 24 clips in May.\nAltogether 48+24 = 72 clips.\nThe answer is 72."
    assert [(a["expr"], a["result"]) for a in annotations] == [("48/2", "24"), ("48+24", "72")]
    for a in annotations:
        assert cot[a["char_pos"] :].startswith(a["result"])


def test_clean_reference_leaves_math_solutions_alone():
    solution = r"We get $x = 2$, so the answer is $\boxed{2}$."
    assert clean_reference(solution) == (solution, [])


def _problems(tmp_path, records):
    return build_problems(ProblemsConfig(source=str(write_jsonl(tmp_path / "p.jsonl", records)), test_fraction=0.0))


def test_reference_traces_on_gsm_symbolic(tmp_path, teacher_path):
    problems = build_problems(ProblemsConfig(size=12))
    traces = build_cot_traces(problems, CotTracesConfig(cot_source="reference"), tmp_path / "work")
    assert {k: len(v) for k, v in traces.items()} == {k: len(v) for k, v in problems.items()}
    rows = traces["train"].to_list()
    assert all(r["finish_reason"] == "reference" and r["cot"] and r["prompt"] for r in rows)
    assert all("####" not in r["cot"] and "<<" not in r["cot"] for r in rows)
    assert all(r["answer_source"] == "phrase" for r in rows)
    assert sum(r["correct"] for r in rows) >= len(rows) - 2  # a few gsm_symbolic templates have broken CoTs
    assert rows[0]["prompt"].startswith("<|im_start|>system") and rows[0]["problem"] in rows[0]["prompt"]
    assert traces["train"].features == FEATURES


def test_reference_traces_keep_bad_rows_with_status(tmp_path, teacher_path):
    problems = _problems(
        tmp_path,
        [
            {"id": "a", "problem": "What is 2+3?", "answer": "5", "solution": "2+3 = <<2+3=5>>5\n#### 5"},
            {"id": "b", "problem": "No solution given.", "answer": "1"},
            {"id": "c", "problem": "", "answer": "1", "solution": "x"},
            {"id": "d", "problem": "Wrong reference", "answer": "9", "solution": "The answer is 8."},
        ],
    )
    rows = build_cot_traces(problems, CotTracesConfig(), tmp_path / "w")["train"].to_list()
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[0]["correct"] is True and rows[0]["annotations"][0]["result"] == "5"
    assert rows[1]["status"] == "no_reference_cot" and rows[1]["correct"] is None
    assert rows[2]["status"] == "empty_problem" and rows[2]["finish_reason"] == "skipped"
    assert rows[3]["correct"] is False and rows[3]["cot_answer"] == "8"


def test_real_teacher_generation_records_finish_reason(tmp_path, teacher_path):
    problems = _problems(
        tmp_path,
        [
            {
                "id": "n",
                "problem": "Natalia sold clips to 48 friends in April and half as many in May. "
                "How many clips did she sell altogether?",
                "answer": "72",
            },
            {"id": "t", "problem": "What is 3 + 4?", "answer": "7"},
        ],
    )
    config = CotTracesConfig(cot_source="teacher", max_new_tokens=12, batch_size=2)
    rows = build_cot_traces(problems, config, tmp_path / "w")["train"].to_list()
    assert all(r["teacher"] == "smollm2-135m-instruct" and r["cot"] for r in rows)
    # 12 tokens cannot finish a word problem: truncation is recorded, never a silent wrong answer.
    assert rows[0]["finish_reason"] == "length" and rows[0]["status"] == "truncated"
    assert 0 < rows[0]["n_cot_tokens"] <= 12
    assert all(r["finish_reason"] in {"length", "stop"} for r in rows)


def test_batched_generation_equals_one_by_one(tmp_path, teacher_path):
    # left padding must not change greedy outputs
    records = [
        {"id": str(i), "problem": p, "answer": "1"}
        for i, p in enumerate(
            ["What is 1 + 1?", "Sam has 5 pens and loses 2 of them in the morning. How many pens are left?"]
        )
    ]
    problems = _problems(tmp_path, records)
    one = build_cot_traces(
        problems, CotTracesConfig(cot_source="teacher", max_new_tokens=16, batch_size=1), tmp_path / "a"
    )
    two = build_cot_traces(
        problems, CotTracesConfig(cot_source="teacher", max_new_tokens=16, batch_size=2), tmp_path / "b"
    )
    assert one["train"]["cot"] == two["train"]["cot"]


def test_cascade_sends_only_wrong_answers_to_the_next_teacher(tmp_path, tiny_teacher, teacher_path):
    problems = _problems(
        tmp_path,
        [{"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(3)]
        + [{"id": "nogold", "problem": "What is 1 + 1?"}],
    )
    config = CotTracesConfig(cot_source="teacher", teachers=[tiny_teacher, "smollm2-135m-instruct"], max_new_tokens=8)
    rows = build_cot_traces(problems, config, tmp_path / "w")["train"].to_list()
    for row in rows:
        first = row["attempts"][0]
        assert first["teacher"] == tiny_teacher
        if first["correct"] is False:
            assert len(row["attempts"]) == 2 and row["teacher"] == "smollm2-135m-instruct"
        else:  # right, or no gold answer to judge against: no second try
            assert len(row["attempts"]) == 1 and row["teacher"] == tiny_teacher
    assert rows[-1]["correct"] is None and len(rows[-1]["attempts"]) == 1
    assert any(len(r["attempts"]) == 2 for r in rows)  # a random tiny model gets these wrong


def test_builders_write_hub_layout_that_load_dataset_reads(tmp_path, teacher_path):
    out = tmp_path / "run"
    ProblemsBuilder(out, ProblemsConfig(size=10)).build()
    built = CotTracesBuilder(out, CotTracesConfig()).build()
    loaded = datasets.load_dataset(str(out / "cot_traces"))
    assert loaded["train"].to_list() == built["train"].to_list()
    assert loaded["train"].features == FEATURES
    for column in (
        "id",
        "source",
        "problem",
        "answer",
        "solution",
        "teacher",
        "cot",
        "cot_answer",
        "answer_source",
        "correct",
        "finish_reason",
    ):
        assert column in loaded["train"].column_names
    card = (out / "cot_traces" / "README.md").read_text()
    assert "configs:" in card and "fingerprint" in card and "problems" in card


def test_reference_traces_on_real_gsm8k(tmp_path, teacher_path):
    path = shared_file("gsm8k_train.jsonl")
    problems = build_problems(ProblemsConfig(source=str(path), limit=50, test_fraction=0.0))
    rows = build_cot_traces(problems, CotTracesConfig(), tmp_path / "w")["train"].to_list()
    assert sum(r["correct"] for r in rows) == 50
    assert sum(bool(r["annotations"]) for r in rows) >= 45  # a few GSM8K solutions carry no annotation


def test_reference_traces_on_real_math(tmp_path, teacher_path):
    path = shared_file("math500_dev.jsonl")
    problems = build_problems(ProblemsConfig(source=str(path), limit=40, test_fraction=0.0))
    rows = build_cot_traces(problems, CotTracesConfig(), tmp_path / "w")["train"].to_list()
    assert all(r["answer_source"] == "boxed" for r in rows)
    assert sum(r["correct"] for r in rows) >= 38


def test_config_errors():
    with pytest.raises(ValueError, match="valid choices: reference, teacher"):
        CotTracesConfig(cot_source="gpt")
    with pytest.raises(ValueError, match="max_new_tokens"):
        CotTracesConfig(max_new_tokens=0)


def test_load_artifact_round_trip(tmp_path):
    out = tmp_path / "r"
    first = ProblemsBuilder(out, ProblemsConfig(size=8)).build()
    assert load_artifact(out / "problems")["train"].to_list() == first["train"].to_list()
