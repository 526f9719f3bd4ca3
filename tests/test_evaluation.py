"""Error attribution: one rule per stage, checked in the field guide's order; counts add up to the failures."""

from __future__ import annotations

import pytest

from mycelium_datasets.defaults import load_spacy
from mycelium_models.evaluation import STAGES, attribute, reference_from_solution, summarize

PROBLEM = "Tom has 3 boxes with 12 eggs each. He breaks 5 eggs. How many eggs are left?"
SOLUTION = "He has 3 * 12 = 36 eggs.\nAfter breaking some, 36 - 5 = 31 eggs are left.\n#### 31"


@pytest.fixture(scope="module")
def reference():
    ref = reference_from_solution(PROBLEM, SOLUTION, "31", load_spacy(None)(PROBLEM))
    assert ref["validated"] and ref["cot_correct"]
    assert [op["op"] for op in ref["ops"]] == ["mul", "sub"]
    return ref


def region_of(reference, k):
    r = reference["ops"][k]["region"]
    return r["char_start"], r["char_end"]


def trace(reference, ops, answer, labels=None, stage=None, regions=None):
    """A solver trace over the reference's own regions unless told otherwise."""
    regions = regions if regions is not None else [region_of(reference, 0), region_of(reference, 1)]
    labels = labels or ["mul", "sub"]
    return {
        "problem": PROBLEM,
        "answer": answer,
        "stage": stage,
        "regions": [{"char_start": a, "char_end": b, "op": label} for (a, b), label in zip(regions, labels)],
        "ops": ops,
    }


def op(name, operands, result):
    sources = []
    for value in operands:
        if isinstance(value, tuple):  # ("op", index)
            sources.append({"value": "0", "source": "op", "char_start": -1, "char_end": -1, "op_index": value[1]})
        else:
            start = PROBLEM.index(value)
            sources.append(
                {
                    "value": value,
                    "source": "problem",
                    "char_start": start,
                    "char_end": start + len(value),
                    "op_index": -1,
                }
            )
    return {"op": name, "operands": [s["value"] for s in sources], "operand_sources": sources, "result": result}


def test_regions_are_distinct_clauses(reference):
    assert region_of(reference, 0) != region_of(reference, 1)


def test_answer_not_in_cot_comes_first(reference):
    stage, _ = attribute(trace(reference, [], None), "99", reference)
    assert stage == "ANSWER_NOT_IN_COT"


def test_teacher_error(reference):
    wrong = {**reference, "cot_correct": False, "cot_answer": "36"}
    assert attribute(trace(reference, [], None), "31", wrong)[0] == "TEACHER_ERROR"
    cut = {**reference, "finish_reason": "length"}
    assert attribute(trace(reference, [], None), "31", cut)[0] == "TEACHER_ERROR"


def test_segmentation_no_region_missed_or_spurious(reference):
    assert attribute(trace(reference, [], None, regions=[]), "31", reference)[0] == "SEGMENTATION"
    only_first = trace(reference, [op("mul", ["3", "12"], "36")], "36", regions=[region_of(reference, 0)])
    assert attribute(only_first, "31", reference)[0] == "SEGMENTATION"
    question = (PROBLEM.index("How"), len(PROBLEM))
    regions = [region_of(reference, 0), region_of(reference, 1), question]
    extra = trace(reference, [], "1", labels=["mul", "sub", "add"], regions=regions)
    assert attribute(extra, "31", reference)[0] == "SEGMENTATION"


def test_classification(reference):
    t = trace(reference, [op("mul", ["3", "12"], "36"), op("add", [("op", 0), "5"], "41")], "41", ["mul", "add"])
    assert attribute(t, "31", reference)[0] == "CLASSIFICATION"


def test_extraction(reference):
    t = trace(reference, [op("mul", ["3", "12"], "36"), op("sub", [("op", 0), "3"], "33")], "33")
    assert attribute(t, "31", reference)[0] == "EXTRACTION"
    t = trace(reference, [op("mul", ["3", "12"], "36")], None, stage="EXTRACTION")
    t["reason"] = "region has 0 operand(s)"
    assert attribute(t, "31", reference)[0] == "EXTRACTION"


def test_dependency(reference):
    # the right regions, operations and numbers, but one more operation consuming earlier results
    ops = [
        op("mul", ["3", "12"], "36"),
        op("sub", [("op", 0), "5"], "31"),
        op("add", [("op", 1), ("op", 0)], "67"),
    ]
    assert attribute(trace(reference, ops, "67"), "31", reference)[0] == "DEPENDENCY"


def test_selection_and_execution_without_reference():
    t = {
        "problem": PROBLEM,
        "answer": "41",
        "stage": None,
        "regions": [{"char_start": 0, "char_end": 10, "op": "sub"}, {"char_start": 11, "char_end": 20, "op": "add"}],
        "ops": [op("mul", ["3", "12"], "31"), op("add", [("op", 0), "5"], "41")],
    }
    assert attribute(t, "31", None)[0] == "SELECTION"  # 31 was computed, then not given
    t["ops"][0]["result"] = "30"
    assert attribute(t, "31", None)[0] == "UNATTRIBUTED"  # never guessed without a validated reference
    t["stage"], t["answer"] = "EXECUTION", None
    assert attribute(t, "31", None)[0] == "EXECUTION"


def test_execution_when_everything_matched(reference):
    t = trace(reference, [op("mul", ["3", "12"], "36"), op("sub", [("op", 0), "5"], "30")], "30")
    assert attribute(t, "31", reference)[0] == "EXECUTION"


def test_summary_counts_add_up():
    rows = [
        {
            "scored": True,
            "correct": True,
            "stage": None,
            "answer": "1",
            "reference_validated": True,
            "teacher_correct": True,
        },
        {
            "scored": True,
            "correct": False,
            "stage": "SEGMENTATION",
            "answer": None,
            "reference_validated": True,
            "teacher_correct": True,
        },
        {
            "scored": True,
            "correct": False,
            "stage": "TEACHER_ERROR",
            "answer": "2",
            "reference_validated": False,
            "teacher_correct": False,
        },
        {
            "scored": False,
            "correct": None,
            "stage": None,
            "answer": None,
            "reference_validated": False,
            "teacher_correct": None,
        },
    ]
    summary = summarize(rows)
    assert summary["n"] == 4 and summary["n_scored"] == 3 and summary["accuracy"] == pytest.approx(1 / 3)
    assert sum(summary["attribution"].values()) == summary["wrong"] == 2
    assert list(summary["attribution"]) == list(STAGES)
    assert summary["teacher_accuracy"] == pytest.approx(2 / 3)  # reported apart from the students' accuracy


def test_solver_takes_each_written_number_once_and_carries_short_regions():
    from mycelium_models.solver import MyceliumSolver

    problem = "Ann had 10% of 200 dollars. She gets 5 more. Then she has 3 times that. How much in all?"
    region = {
        text: (problem.index(text), problem.index(text) + len(text))
        for text in ("Ann had 10% of 200 dollars", "She gets 5 more", "3 times that", "How much in all")
    }
    trace = {"answer": None, "stage": None, "ops": []}
    MyceliumSolver._execute(
        problem,
        [
            (region["Ann had 10% of 200 dollars"], "mul"),
            (region["She gets 5 more"], "add"),
            (region["3 times that"], "mul"),
            (region["How much in all"], "add"),
        ],
        trace,
    )
    # 10% is one operand (10), not two (10 and 0.1); "5 more" completes with the last result; the question adds
    assert [op["operands"] for op in trace["ops"]] == [["10", "200"], ["2000", "5"], ["2005", "3"], ["2005", "6015"]]
    assert trace["answer"] == "8020" and trace["stage"] is None
    short = {"answer": None, "stage": None, "ops": []}
    MyceliumSolver._execute(problem, [(region["How much in all"], "mul")], short)
    assert short["answer"] is None and short["stage"] == "EXTRACTION" and "operand" in short["reason"]
