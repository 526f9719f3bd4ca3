"""Error attribution: one rule per stage, checked in the field guide's order, against the reference binding; the
counts add up to the failures."""

from __future__ import annotations

import pytest

from mycelium_datasets.defaults import load_spacy
from mycelium_datasets.numbers import quantities
from mycelium_models.evaluation import STAGES, attribute, reference_binding, reference_from_solution, summarize
from mycelium_models.solver import execute_into_trace

PROBLEM = "Tom has 3 boxes with 12 eggs each. He breaks 5 eggs. How many eggs are left?"
SOLUTION = "He has 3 * 12 = 36 eggs.\nAfter breaking some, 36 - 5 = 31 eggs are left.\n#### 31"
FOUND = quantities(PROBLEM)


def q(number: str) -> dict:
    """The quantity pointer of a number the problem writes."""
    start = PROBLEM.index(number)
    return {"kind": "quantity", "index": next(k for k, (_, a, _) in enumerate(FOUND) if a == start)}


def result(k: int) -> dict:
    return {"kind": "op", "index": k}


@pytest.fixture
def reference():
    # per test (fast once spaCy is loaded): mutmut maps a function only to the tests during which it runs
    ref = reference_from_solution(PROBLEM, SOLUTION, "31", load_spacy(None)(PROBLEM))
    assert ref["validated"] and ref["cot_correct"]
    binding = reference_binding(PROBLEM, ref)
    assert [(op["op"], op["unit"]) for op in binding["ops"]] == [("mul", 0), ("sub", 1)]
    assert [u["text"] for u in binding["units"]] == ["Tom has 3 boxes with 12 eggs each", "He breaks 5 eggs"]
    return ref


def solved(reference, ops, pointers, answer_op, units=None, problem=PROBLEM) -> dict:
    """A solver trace, executed by the solver's own executor: ``ops`` are ``(operation, unit)``; the units are the
    reference binding's unless given as ``(char_start, char_end)``."""
    binding = reference_binding(problem, reference)
    spans = units if units is not None else [(u["char_start"], u["char_end"]) for u in binding["units"]]
    trace = {
        "problem": problem,
        "answer": None,
        "stage": None,
        "reason": "",
        "units": [{"char_start": a, "char_end": b, "text": problem[a:b], "ops": []} for a, b in spans],
    }
    for name, unit in ops:
        trace["units"][unit]["ops"].append(name)
    operations = [{"op": name, "unit": unit} for name, unit in ops]
    return execute_into_trace(problem, trace, operations, pointers, answer_op, [])


def right(reference):
    return solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 1)


def test_the_reference_solution_executes_to_the_gold(reference):
    assert right(reference)["answer"] == "31"


def test_answer_not_in_cot_comes_first(reference):
    wrong_teacher = {**reference, "cot_correct": False}  # the neighbouring rule would say TEACHER_ERROR
    assert attribute(right(reference), "99", wrong_teacher)[0] == "ANSWER_NOT_IN_COT"


def test_teacher_error(reference):
    wrong = {**reference, "cot_correct": False, "cot_answer": "36"}
    assert attribute(right(reference), "31", wrong)[0] == "TEACHER_ERROR"
    cut = {**reference, "finish_reason": "length"}
    assert attribute(right(reference), "31", cut)[0] == "TEACHER_ERROR"


def test_segmentation_no_unit_a_missed_unit_or_a_spurious_one(reference):
    first = (0, PROBLEM.index(" each") + 5)
    assert attribute(solved(reference, [], [], -1, units=[]), "31", reference)[0] == "SEGMENTATION"
    missed = solved(reference, [("mul", 0)], [[q("3"), q("12")]], 0, units=[first])
    assert attribute(missed, "31", reference)[0] == "SEGMENTATION"
    question = (PROBLEM.index("How"), len(PROBLEM) - 1)
    binding = reference_binding(PROBLEM, reference)
    spans = [(u["char_start"], u["char_end"]) for u in binding["units"]] + [question]
    extra = solved(
        reference,
        [("mul", 0), ("sub", 1), ("add", 2)],
        [[q("3"), q("12")], [result(0), q("5")], [result(1), q("5")]],
        2,
        units=spans,
    )
    assert attribute(extra, "31", reference)[0] == "SEGMENTATION"


def test_classification_a_unit_with_another_operation_sequence(reference):
    t = solved(reference, [("mul", 0), ("add", 1)], [[q("3"), q("12")], [result(0), q("5")]], 1)
    assert attribute(t, "31", reference)[0] == "CLASSIFICATION"
    two_ops = solved(
        reference,
        [("mul", 0), ("mul", 0), ("sub", 1)],
        [[q("3"), q("12")], [result(0), q("3")], [result(1), q("5")]],
        2,
    )
    assert attribute(two_ops, "31", reference)[0] == "CLASSIFICATION"  # a sequence, not a set: mul+mul is not mul


def test_extraction_another_quantity_or_order_or_no_operand(reference):
    other = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("3")]], 1)
    assert attribute(other, "31", reference)[0] == "EXTRACTION"
    swapped = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [q("5"), result(0)]], 1)
    assert swapped["answer"] == "-31"
    assert attribute(swapped, "31", reference)[0] == "EXTRACTION"  # sub's order is part of its operands
    commuted = solved(reference, [("mul", 0), ("sub", 1)], [[q("12"), q("3")], [result(0), q("5")]], 1)
    assert commuted["answer"] == "31"  # mul's order means nothing: the same binding
    empty = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], []], 1)
    assert empty["stage"] == "EXTRACTION"
    assert attribute(empty, "31", reference)[0] == "EXTRACTION"


def test_dependency_with_the_same_layout(reference):
    ref = reference_from_solution(
        PROBLEM,
        "He has 3 * 12 = 36 eggs.\nHe breaks 5 eggs, 36 - 5 = 31 left, and 31 - 0 = 31.\n#### 31",
        "31",
        load_spacy(None)(PROBLEM),
    )
    binding = reference_binding(PROBLEM, ref)
    assert binding is not None and len(binding["ops"]) == 3
    names = [(op["op"], op["unit"]) for op in binding["ops"]]
    pointers = [[dict(p) for p in op["operands"]] for op in binding["ops"]]
    last = next(
        k for k, op in enumerate(binding["ops"]) if any(p["kind"] == "op" and p["index"] != 0 for p in op["operands"])
    )
    for p in pointers[last]:
        if p["kind"] == "op":
            p["index"] = 0  # another result than the reference's
    t = solved(ref, names, pointers, binding["answer_op"])
    assert attribute(t, "31", ref)[0] == "DEPENDENCY"


def test_selection_another_answer_operation(reference):
    t = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 0)
    assert t["answer"] == "36"
    assert attribute(t, "31", reference)[0] == "SELECTION"


def test_selection_and_execution_without_reference(reference):
    t = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 0)
    assert attribute(t, "31", None)[0] == "SELECTION"  # 31 was computed, then not given
    other = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("5")], [result(0), q("12")]], 1)
    assert attribute(other, "31", None)[0] == "UNATTRIBUTED"  # never guessed without a validated reference
    zero = solved(reference, [("div", 0), ("sub", 1)], [[q("3"), {"kind": "op", "index": 1}], [result(0), q("5")]], 1)
    assert zero["stage"] == "EXECUTION" and attribute(zero, "31", None)[0] == "EXECUTION"


# Boundaries: each trace below is built so that the neighbouring rule, checked in another order or written a little
# differently, names another stage.


def test_boundary_answer_not_in_cot_before_teacher_error(reference):
    cut_and_wrong = {**reference, "finish_reason": "length", "cot_correct": False, "cot_answer": "36"}
    assert attribute(right(reference), "99", cut_and_wrong)[0] == "ANSWER_NOT_IN_COT"  # not TEACHER_ERROR
    assert attribute(right(reference), "31", cut_and_wrong)[0] == "TEACHER_ERROR"  # 31 is in the CoT


def test_boundary_a_unit_that_only_touches_a_reference_unit_does_not_overlap_it(reference):
    binding = reference_binding(PROBLEM, reference)
    spans = [(u["char_start"], u["char_end"]) for u in binding["units"]]
    touching = (spans[1][1], len(PROBLEM))  # starts exactly where the second reference unit ends
    assert PROBLEM[touching[0] : touching[1]] == ". How many eggs are left?"
    t = solved(
        reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 1, units=[*spans, touching]
    )
    # half-open ranges: a spurious unit (SEGMENTATION); read as overlapping, its missing 'sub' is CLASSIFICATION
    assert attribute(t, "31", reference)[0] == "SEGMENTATION"


SQUARE = "A square garden has sides of 7 meters. What is its area in square meters?"


def test_boundary_extraction_compares_operands_as_a_multiset():
    ref = reference_from_solution(
        SQUARE, "Its area is 7 * 7 = 49 square meters.\n#### 49", "49", load_spacy(None)(SQUARE)
    )
    binding = reference_binding(SQUARE, ref)
    seven = {"kind": "quantity", "index": 0}
    assert [p["index"] for p in binding["ops"][0]["operands"]] == [0, 0]
    once = solved(ref, [("mul", 0)], [[seven]], 0, problem=SQUARE)  # 7 taken once: mul(7) cannot run
    assert once["stage"] == "EXECUTION"
    # as sets, {7} == {7, 7} and the failure would fall through to EXECUTION
    assert attribute(once, "49", ref)[0] == "EXTRACTION"


def test_boundary_extraction_counts_problem_numbers_with_another_layout(reference):
    binding = reference_binding(PROBLEM, reference)
    (a0, b0), (a1, b1) = [(u["char_start"], u["char_end"]) for u in binding["units"]]
    # the second reference unit cut in two, each half taking its 'sub': the layout is mul, sub, sub
    split = [(a0, b0), (a1, a1 + 9), (a1 + 9, b1)]
    t = solved(
        reference,
        [("mul", 0), ("sub", 1), ("sub", 2)],
        [[q("3"), q("12")], [result(0), q("5")], [result(1), q("5")]],
        2,
        units=split,
    )
    assert t["answer"] == "26"
    # 5 used twice: as a set of numbers the same as the reference's, and it would be DEPENDENCY (one more operation)
    assert attribute(t, "31", reference)[0] == "EXTRACTION"


def test_boundary_an_operation_the_solver_found_no_operand_for_is_extraction_without_a_reference(reference):
    empty = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], []], 1)
    assert empty["stage"] == "EXTRACTION" and empty["answer"] is None
    assert attribute(empty, "31", None)[0] == "EXTRACTION"  # the solver's own report; else UNATTRIBUTED


def test_boundary_dependency_looks_at_result_edges_not_only_the_operation_count(reference):
    no_edge = solved(
        reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [{"kind": "op", "index": 1}, q("5")]], 1
    )  # sub takes its own result (a cycle) where the reference takes mul's: the same numbers, another edge
    assert no_edge["stage"] == "EXECUTION"
    assert attribute(no_edge, "31", reference)[0] == "DEPENDENCY"  # by the count alone: EXECUTION


def test_boundary_selection_against_the_reference_comes_before_execution(reference):
    t = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 2)
    assert t["stage"] == "EXECUTION" and all(op["result"] is None for op in t["ops"])  # no value to compare
    assert attribute(t, "31", reference)[0] == "SELECTION"  # the answer names no operation of the reference's
    assert attribute(t, "31", None)[0] == "EXECUTION"


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


def test_a_percent_is_two_quantities_and_the_executor_records_every_pointer():
    problem = "Ann had 10% of 200 dollars. How much?"
    found = quantities(problem)
    assert [(str(v), problem[a:b]) for v, a, b in found] == [("10", "10"), ("1/10", "10"), ("200", "200")]
    trace = {"units": [{"char_start": 0, "char_end": 26, "text": problem[:26], "ops": ["mul"]}], "stage": None}
    pointers = [[{"kind": "quantity", "index": 1}, {"kind": "quantity", "index": 2}]]
    execute_into_trace(problem, trace, [{"op": "mul", "unit": 0}], pointers, 0, [])
    assert trace["answer"] == "20" and trace["stage"] is None
    assert trace["ops"][0]["pointers"][0] == {
        "kind": "quantity",
        "index": 1,
        "value": "0.1",
        "char_start": 8,
        "char_end": 10,
    }
