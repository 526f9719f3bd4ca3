"""Error attribution: one rule per stage, checked in the field guide's order, against the reference binding; the
counts add up to the failures."""

from __future__ import annotations

import collections
import json

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
    assert "by_source" not in summary  # one source: its figure is the accuracy


def test_a_mix_of_sources_is_also_scored_source_by_source():
    def row(source, correct, scored=True):
        return {
            "scored": scored,
            "correct": correct,
            "stage": None if correct else "EXECUTION",
            "answer": "1",
            "reference_validated": True,
            "teacher_correct": None,
            "source": source,
        }

    rows = [
        row("gsm8k_train", True),
        row("gsm8k_train", False),
        row("gsm8k_train", False),
        row("mawps", True),
        row("mawps", None, scored=False),
    ]
    summary = summarize(rows)
    assert summary["by_source"] == {
        "gsm8k_train": {"correct": 1, "n_scored": 3, "accuracy": pytest.approx(1 / 3)},
        "mawps": {"correct": 1, "n_scored": 1, "accuracy": 1.0},
    }
    assert sum(s["n_scored"] for s in summary["by_source"].values()) == summary["n_scored"]


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


# The reasons: each wrong answer's "why" line in report.md. A reason names what differs from the reference (which unit,
# which operation, which operands, which result edges), so each is pinned here for one known failure per rule.


def test_the_reason_of_each_stage_names_what_went_wrong(reference):
    assert attribute(right(reference), "99", reference) == (
        "ANSWER_NOT_IN_COT",
        "the gold answer 99 appears nowhere in the CoT",
    )
    cut = {**reference, "finish_reason": "length"}
    assert attribute(right(reference), "31", cut) == ("TEACHER_ERROR", "the CoT was cut at the token limit")
    wrong = {**reference, "cot_correct": False, "cot_answer": "36"}
    assert attribute(right(reference), "31", wrong) == ("TEACHER_ERROR", "the CoT answers 36, gold is 31")
    first = (0, PROBLEM.index(" each") + 5)
    missed = solved(reference, [("mul", 0)], [[q("3"), q("12")]], 0, units=[first])
    assert attribute(missed, "31", reference) == (
        "SEGMENTATION",
        "missed reference units ['He breaks 5 eggs'], spurious units []",
    )
    added = solved(reference, [("mul", 0), ("add", 1)], [[q("3"), q("12")], [result(0), q("5")]], 1)
    assert attribute(added, "31", reference) == (
        "CLASSIFICATION",
        "unit 'He breaks 5 eggs' classified add, reference sub",
    )
    two_ops = solved(
        reference,
        [("mul", 0), ("mul", 0), ("sub", 1)],
        [[q("3"), q("12")], [result(0), q("3")], [result(1), q("5")]],
        2,
    )
    assert attribute(two_ops, "31", reference) == (
        "CLASSIFICATION",
        "unit 'Tom has 3 boxes with 12 eggs each' classified mul+mul, reference mul",
    )
    # quantities by their position in the problem (3 is quantity 0, 5 is quantity 2), a result by its kind
    other = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("3")]], 1)
    assert attribute(other, "31", reference) == (
        "EXTRACTION",
        "operation 1 (sub) takes ['a result', '0'], reference ['a result', '2']",
    )
    empty = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], []], 1)
    assert attribute(empty, "31", reference) == ("EXTRACTION", "operations [1] found no operand")  # the solver's
    first_op = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 0)
    assert attribute(first_op, "31", reference) == ("SELECTION", "operation 0 was the answer, reference 1")
    assert attribute(first_op, "31", None) == ("SELECTION", "operation 1 computed 31, but 0 was the answer")
    cycle = solved(reference, [("div", 0), ("sub", 1)], [[q("3"), result(1)], [result(0), q("5")]], 1)
    assert attribute(cycle, "31", None) == ("EXECUTION", "operation 0 depends on its own result")
    commuted = solved(reference, [("mul", 0), ("sub", 1)], [[q("12"), q("3")], [result(0), q("5")]], 1)
    assert attribute(commuted, "30", {**reference, "cot": reference["cot"] + " Or 30."}) == (
        "EXECUTION",
        "every stage matched the reference, yet the DAG executes to 31",
    )
    swapped = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("5")], [result(0), q("12")]], 1)
    assert attribute(swapped, "31", None) == (
        "UNATTRIBUTED",
        "wrong answer and no validated reference to compare the stages with",
    )


def test_the_reason_with_another_layout_lists_the_problem_numbers_used(reference):
    binding = reference_binding(PROBLEM, reference)
    (a0, b0), (a1, b1) = [(u["char_start"], u["char_end"]) for u in binding["units"]]
    t = solved(
        reference,
        [("mul", 0), ("sub", 1), ("sub", 2)],
        [[q("3"), q("12")], [result(0), q("5")], [result(1), q("5")]],
        2,
        units=[(a0, b0), (a1, a1 + 9), (a1 + 9, b1)],
    )
    # by value (what the problem writes), sorted as text; results are not problem numbers
    assert attribute(t, "31", reference) == (
        "EXTRACTION",
        "used problem numbers ['12', '3', '5', '5'], reference ['12', '3', '5']",
    )


def test_the_reason_of_a_dependency_lists_the_result_edges():
    ref = reference_from_solution(
        PROBLEM,
        "He has 3 * 12 = 36 eggs.\nHe breaks 5 eggs, 36 - 5 = 31 left, and 31 - 0 = 31.\n#### 31",
        "31",
        load_spacy(None)(PROBLEM),
    )
    binding = reference_binding(PROBLEM, ref)
    names = [(op["op"], op["unit"]) for op in binding["ops"]]
    pointers = [[dict(p) for p in op["operands"]] for op in binding["ops"]]
    ref_edges = [[p["index"] for p in op["operands"] if p["kind"] == "op"] for op in binding["ops"]]
    assert ref_edges == [[], [0], [1]]
    pointers[2] = [{"kind": "op", "index": 0} if p["kind"] == "op" else p for p in pointers[2]]
    t = solved(ref, names, pointers, binding["answer_op"])
    assert attribute(t, "31", ref) == (
        "DEPENDENCY",
        "3 operations with result edges [(), (0,), (0,)]; reference 3 with [(), (0,), (1,)]",
    )


def test_a_trace_without_the_optional_keys_gets_the_defaults():
    # the solver writes every key; a trace read back from elsewhere may not: no units, no reason, no answer_op
    assert attribute({"problem": PROBLEM}, "31", None) == ("SEGMENTATION", "the tagger found no operation unit")
    told = {"problem": PROBLEM, "units": [], "reason": "no quantity in the problem"}
    assert attribute(told, "31", None) == ("SEGMENTATION", "no quantity in the problem")
    unit = [{"char_start": 0, "char_end": 33, "ops": ["mul"]}]
    assert attribute({"problem": PROBLEM, "units": unit, "stage": "EXTRACTION"}, "31", None) == ("EXTRACTION", "")
    assert attribute({"problem": PROBLEM, "units": unit, "stage": "EXECUTION"}, "31", None) == ("EXECUTION", "")
    assert attribute({"problem": PROBLEM, "units": unit}, "31", None)[0] == "UNATTRIBUTED"  # no ops: nothing computed
    ops = [{"op": "mul", "result": "31"}, {"op": "sub", "result": "26"}]
    # 31 was computed by operation 0, and no answer operation was named (-1: none)
    assert attribute({"problem": PROBLEM, "units": unit, "ops": ops}, "31", None) == (
        "SELECTION",
        "operation 0 computed 31, but -1 was the answer",
    )


@pytest.mark.parametrize(
    "gold, cot, stage",
    [
        ("(2, 3)", "The pair is (2,3).", "TEACHER_ERROR"),  # a non-numeric gold is found with spaces ignored
        ("(2,3)", "The pair is (2, 3).", "TEACHER_ERROR"),
        ("(3, 2)", "The pair is (2, 3).", "ANSWER_NOT_IN_COT"),
    ],
)
def test_a_gold_that_is_not_a_number_is_looked_for_as_text(gold, cot, stage):
    reference = {"cot": cot, "cot_answer": "(2, 3)", "cot_correct": False, "finish_reason": "stop", "ops": []}
    assert attribute({"problem": PROBLEM, "units": []}, gold, reference)[0] == stage


def test_a_unit_in_the_gap_between_two_reference_units_overlaps_neither(reference):
    spans = [(u["char_start"], u["char_end"]) for u in reference_binding(PROBLEM, reference)["units"]]
    gap = (spans[0][1], spans[1][0])  # ends exactly where the second reference unit starts
    assert PROBLEM[gap[0] : gap[1]] == ". "
    t = solved(reference, [("mul", 0), ("sub", 1)], [[q("3"), q("12")], [result(0), q("5")]], 1, units=[*spans, gap])
    # half-open ranges: read as touching, the gap would overlap 'He breaks 5 eggs' and lack its 'sub'
    assert attribute(t, "31", reference) == ("SEGMENTATION", "missed reference units [], spurious units ['. ']")


def with_binding(reference, ops, answer_op):
    """The reference with its binding replaced by ``ops`` ((operation, unit, operands)) over the same units."""
    binding = reference_binding(PROBLEM, reference)
    operations = [{"op": name, "unit": unit, "operands": operands} for name, unit, operands in ops]
    return {**reference, "binding": {**binding, "ops": operations, "answer_op": answer_op}}


@pytest.mark.parametrize("results", [[result(1), result(0)], [result(0), result(1)]])
def test_add_and_mul_compare_operands_and_results_as_multisets_other_operations_as_sequences(reference, results):
    # reference: mul(3, 12), add(5, 3), then the two results combined; the trace writes every operand list reversed
    def attribution(last):
        ref = with_binding(
            reference,
            [("mul", 0, [q("3"), q("12")]), ("add", 1, [q("5"), q("3")]), (last, 1, results)],
            2,
        )
        t = solved(
            ref,
            [("mul", 0), ("add", 1), (last, 1)],
            [[q("12"), q("3")], [q("3"), q("5")], results[::-1]],
            2,
        )
        return attribute(t, "31", ref)

    assert attribution("add") == ("EXECUTION", "every stage matched the reference, yet the DAG executes to 44")
    assert attribution("mul") == ("EXECUTION", "every stage matched the reference, yet the DAG executes to 288")
    edges = [tuple(p["index"] for p in results)]
    assert attribution("sub") == (
        "DEPENDENCY",
        f"3 operations with result edges [(), (), {edges[0][::-1]}]; reference 3 with [(), (), {edges[0]}]",
    )
    ref = with_binding(reference, [("mul", 0, [q("3"), q("12")]), ("add", 1, [q("5"), q("3")])], 1)
    one = solved(ref, [("mul", 0), ("add", 1)], [[q("3"), q("12")], [q("5"), q("3")]], 1)
    # the reference's second unit holds two operations and the trace's one: its sequence, joined
    two = with_binding(ref, [("mul", 0, [q("3"), q("12")]), ("add", 1, [q("5"), q("3")]), ("add", 1, results)], 2)
    assert attribute(one, "31", two) == ("CLASSIFICATION", "unit 'He breaks 5 eggs' classified add, reference add+add")


def test_constants_are_compared_by_value_and_apart_from_results(reference):
    two = {"kind": "constant", "index": -1, "value": "2"}
    ref = with_binding(reference, [("mul", 0, [q("3"), q("12")]), ("div", 1, [result(0), two])], 1)

    def attribution(operand):
        t = solved(ref, [("mul", 0), ("div", 1)], [[q("3"), q("12")], [result(0), operand]], 1)
        return attribute(t, "31", ref)

    assert attribution({**two, "value": "2.0"}) == (
        "EXECUTION",
        "every stage matched the reference, yet the DAG executes to 18",
    )
    assert attribution({**two, "value": "3"}) == (
        "EXTRACTION",
        "operation 1 (div) takes ['a result', '3'], reference ['a result', '2']",
    )
    assert attribution(result(0)) == (  # a result where the reference has a constant: not a DEPENDENCY first
        "EXTRACTION",
        "operation 1 (div) takes ['a result', 'a result'], reference ['a result', '2']",
    )


def test_a_reference_is_bound_only_when_validated_with_operations_and_only_once(reference):
    assert reference_binding(PROBLEM, {**reference, "validated": False}) is None
    assert reference_binding(PROBLEM, {**reference, "ops": []}) is None
    assert reference_binding(PROBLEM, None) is None
    fresh = {k: v for k, v in reference.items() if k != "binding"}
    first = reference_binding(PROBLEM, fresh)
    assert fresh["binding"] is first and reference_binding(PROBLEM, fresh) is first  # kept in the reference


# -- problems without a usable gold answer: answered, not scored, each with its own reason ----------------------------

UNSCORABLE = [
    {"id": "no-answer", "problem": "Tom has 3 apples and buys 4 more. How many apples does he have?"},
    {"id": "no-problem", "answer": "3"},
    {"id": "empty", "problem": "   ", "answer": "2"},
]


def _problems(tmp_path, records, test_fraction=0.0):
    from mycelium_datasets.problems import ProblemsConfig, build_problems

    from conftest import write_jsonl

    source = write_jsonl(tmp_path / "problems.jsonl", records)
    return build_problems(ProblemsConfig(source=str(source), test_fraction=test_fraction))["train"]


def test_with_nothing_scored_the_accuracy_is_none_with_one_warning_and_each_rows_own_reason(
    tiny_solver, tmp_path, caplog
):
    import logging

    from mycelium_models.evaluation import evaluate_students, scoring_rows

    problems = _problems(tmp_path, UNSCORABLE)
    statuses = dict(zip(problems["id"], zip(problems["status"], problems["status_reason"])))
    assert all(status != "ok" for status, _ in statuses.values())
    with caplog.at_level(logging.WARNING, logger="mycelium_models.evaluation"):
        summary, rows = evaluate_students(tiny_solver, scoring_rows(problems), progress=False)
    assert summary["n"] == 3 and summary["n_scored"] == 0 and summary["accuracy"] is None
    assert summary["not_scored"] == dict(collections.Counter(status for status, _ in statuses.values()))
    assert [r.levelno for r in caplog.records if r.name == "mycelium_models.evaluation"] == [logging.WARNING]
    for row in rows:  # the problems artifact's own status and reason, not a blanket "no gold answer"
        status, reason = statuses[row["id"]]
        assert not row["scored"] and row["correct"] is None and row["status"] == status
        assert reason and reason in row["reason"]
    assert summary["ladder"]["a"]["accuracy"] is None and summary["beam"] == []


def test_only_rows_with_a_usable_gold_are_scored(tiny_solver, tmp_path):
    from mycelium_models.evaluation import evaluate_students, scoring_rows

    records = [*UNSCORABLE, {"id": "ok", "problem": "Ann has 5 pens and loses 2. How many are left?", "answer": "3"}]
    summary, rows = evaluate_students(tiny_solver, scoring_rows(_problems(tmp_path, records)), progress=False)
    assert summary["n"] == 4 and summary["n_scored"] == 1 and summary["accuracy"] in (0.0, 1.0)
    assert sum(summary["not_scored"].values()) == 3 and [r["scored"] for r in rows] == [False, False, False, True]
    # a problem given with an answer but a status other than ok is not scored either
    given = [{"id": "x", "problem": "Ann has 5 pens.", "answer": "5", "status": "invalid_row", "status_reason": "r"}]
    summary, rows = evaluate_students(tiny_solver, given, progress=False)
    assert summary["n_scored"] == 0 and rows[0]["status"] == "invalid_row" and rows[0]["gold"] is None


def test_eval_writes_null_accuracy_and_a_report_without_a_score_when_nothing_is_scored(tiny_solver, tmp_path):
    from mycelium_run.cli import main

    from conftest import save_solver, write_jsonl

    models = save_solver(tiny_solver, tmp_path / "models")
    source = write_jsonl(tmp_path / "unscored.jsonl", UNSCORABLE)
    out = tmp_path / "eval"
    assert main(["eval", "--models", str(models), "--source", str(source), "--out", str(out)]) == 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["n_scored"] == 0 and summary["accuracy"] is None
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["id"]: p["status"] for p in predictions} == {
        "no-answer": "missing_answer",
        "no-problem": "invalid_row",
        "empty": "empty_problem",
    }
    report = (out / "report.md").read_text()
    assert "0.000" not in report and "0/0" not in report  # no score of nothing
    assert all(status in report for status in ("missing_answer", "invalid_row", "empty_problem"))
