"""The solution as pointers: units, layout order, dependency-order execution, the ``bindings`` artifact."""

from __future__ import annotations

from fractions import Fraction

import pytest

from mycelium_datasets.bindings import BindingError, bind
from mycelium_datasets.dag import DagError, dependency_order, execute, units_from_regions
from mycelium_datasets.numbers import quantities

PROBLEM = (
    "A loaf of bread at the market costs $9. bagels cost $2 each. How much more do 4 loaves of bread cost than 8 "
    "bagels?"
)


def operand(value, source, start=-1, end=-1, op_index=-1):
    return {"value": str(value), "source": source, "char_start": start, "char_end": end, "op_index": op_index}


def region(text, phrase):
    a = text.index(phrase)
    return {"char_start": a, "char_end": a + len(phrase), "text": phrase}


def at(text, number, after=""):
    a = text.index(number, text.index(after) if after else 0)
    return a, a + len(number)


@pytest.fixture
def bread_ops():
    """The validated DAG of a real gsm_symbolic problem as op_pairs writes it (CoT order): the last op, the answer,
    lives in the first sentence's region, so its layout puts it before an op whose result it takes."""
    first = region(PROBLEM, "A loaf of bread at the market costs $9")
    question = region(PROBLEM, "How much more do 4 loaves of bread cost than 8 bagels")
    return [
        {
            "op": "mul",
            "operands": [operand(4, "problem", *at(PROBLEM, "4")), operand(9, "problem", *at(PROBLEM, "9"))],
            "result": "36",
            "written_result": "36",
            "region": first,
        },
        {
            "op": "mul",
            "operands": [operand(8, "problem", *at(PROBLEM, "8")), operand(2, "problem", *at(PROBLEM, "2"))],
            "result": "16",
            "written_result": "16",
            "region": question,
        },
        {
            "op": "sub",
            "operands": [operand(36, "op", op_index=0), operand(16, "op", op_index=1)],
            "result": "20",
            "written_result": "20",
            "region": first,
        },
    ]


def test_units_grow_to_words_and_merge_across_spaces_only():
    text = "She buys 3 apples and 4 pears, then eats 2."
    assert units_from_regions(text, [(4, 14)]) == [(4, 17)]  # "buys 3 app|les" grows to the word's end
    a, b = text.index("3 apples"), text.index("4 pears") + len("4 pears")
    assert units_from_regions(text, [(a, a + 8), (a + 9, a + 12), (b - 7, b)]) == [(a, b)]  # "and" between: merged
    c = text.index("eats 2")
    assert units_from_regions(text, [(c, c + 6), (a, b)]) == [(a, b), (c, c + 6)]  # ", then" keeps them apart


def test_binding_lays_out_by_unit_points_at_quantities_and_reproduces_the_dag(bread_ops):
    binding = bind(PROBLEM, bread_ops, ["100"], executed="20")
    texts = [u["text"] for u in binding["units"]]
    assert texts == ["A loaf of bread at the market costs $9", "How much more do 4 loaves of bread cost than 8 bagels"]
    assert [(op["op"], op["unit"]) for op in binding["ops"]] == [("mul", 0), ("sub", 0), ("mul", 1)]
    # the answer (sub) is laid out second and takes the result of the op laid out last: a forward pointer
    assert binding["answer_op"] == 1
    assert [(p["kind"], p["index"]) for p in binding["ops"][1]["operands"]] == [("op", 0), ("op", 2)]
    found = quantities(PROBLEM)
    mul = binding["ops"][0]["operands"]  # commutative: quantities in text order, whatever the CoT wrote
    assert [found[p["index"]][0] for p in mul] == [9, 4]
    assert binding["executed_answer"] == "20" and binding["constants"] == []
    value, values = execute(binding["ops"], binding["answer_op"], found, ["100"])
    assert value == 20 and values == [36, 20, 16]


def test_a_percent_answer_becomes_an_explicit_step_and_constants_point_into_the_vocabulary():
    text = "A shirt costs $40 and is 25% off. What percent of the price is paid?"
    ops = [
        {
            "op": "sub",
            "operands": [operand(100, "constant"), operand(25, "problem", *at(text, "25"))],
            "result": "75",
            "written_result": "75%",
            "region": region(text, "is 25% off"),
        }
    ]
    binding = bind(text, ops, ["2", "100"], executed="7500")  # op_pairs reads "= 75%" as 75 percent of a whole
    assert [op["op"] for op in binding["ops"]] == ["sub", "mul"]
    assert binding["answer_op"] == 1
    assert binding["ops"][1]["operands"] == [
        {"kind": "op", "index": 0, "value": "75"},
        {"kind": "constant", "index": 1, "value": "100"},
    ]
    assert binding["ops"][0]["operands"][0] == {"kind": "constant", "index": 1, "value": "100"}
    assert bind(text, ops, [])["ops"][0]["operands"][0]["index"] == -1  # outside the vocabulary: by value only


def test_what_a_binding_cannot_hold_is_an_error_with_its_reason(bread_ops):
    no_region = [dict(bread_ops[0], region={"char_start": -1, "char_end": -1, "text": ""})]
    with pytest.raises(BindingError, match="no problem region"):
        bind(PROBLEM, no_region, [])
    wrong_place = [dict(bread_ops[0], operands=[operand(4, "problem", 0, 1), operand(9, "problem", 0, 1)])]
    with pytest.raises(BindingError, match="not a quantity"):
        bind(PROBLEM, wrong_place, [])
    with pytest.raises(BindingError, match="executes to 20, op_pairs to 21"):
        bind(PROBLEM, bread_ops, [], executed="21")


def test_execution_follows_dependencies_and_rejects_cycles_and_bad_pointers():
    q = [(Fraction(3), 0, 1), (Fraction(4), 2, 3)]
    ops = [
        {"op": "add", "operands": [{"kind": "op", "index": 1}, {"kind": "quantity", "index": 0}]},
        {"op": "mul", "operands": [{"kind": "quantity", "index": 0}, {"kind": "quantity", "index": 1}]},
    ]
    assert dependency_order(ops) == [1, 0]
    assert execute(ops, 0, q, [])[0] == 15
    cycle = [dict(ops[0]), {"op": "mul", "operands": [{"kind": "op", "index": 0}, {"kind": "quantity", "index": 1}]}]
    with pytest.raises(DagError, match="its own result"):
        execute(cycle, 0, q, [])
    with pytest.raises(DagError, match="does not exist"):
        execute(
            [{"op": "add", "operands": [{"kind": "quantity", "index": 5}, {"kind": "quantity", "index": 0}]}], 0, q, []
        )
    with pytest.raises(DagError, match="takes 1..1 operands"):
        execute([{"op": "floor", "operands": [{"kind": "quantity", "index": 0}] * 2}], 0, q, [])
    with pytest.raises(DagError, match="division by zero"):
        execute(
            [{"op": "div", "operands": [{"kind": "quantity", "index": 0}, {"kind": "constant", "index": 0}]}],
            0,
            q,
            ["0"],
        )
