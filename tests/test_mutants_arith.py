"""Linear equations in one unknown (``arith.solve_linear``): each operation's rule, checked on its own equation."""

from __future__ import annotations

import re
from fractions import Fraction as F

import pytest

from mycelium_datasets.arith import ParseError, evaluate, parse_expression, solve_linear, unknowns


@pytest.mark.parametrize(
    "left, right, coefficients, value",
    [
        ("-(x - 2)", "5", [-1, 2, 0, 5], -3),  # a negated group: both the unknown's and the constant's sign flip
        ("10 - x - 2", "3", [-1, 8, 0, 3], 5),  # a chain of subtractions
        (r"\frac{x}{4}", "2", [F(1, 4), 0, 0, 2], 8),  # division by a number
        ("x / 4 / 2", "1", [F(1, 8), 0, 0, 1], 8),
        ("3(x + 1)", "x + 7", [3, 3, 1, 7], 2),  # a product with the unknown on the right
    ],
)
def test_each_operation_keeps_the_equation_linear(left, right, coefficients, value):
    assert solve_linear(left, right) == ("x", coefficients, value)


@pytest.mark.parametrize(
    "left, right, reason",
    [
        ("x x", "4", "not linear"),  # a product of the unknown with itself
        (r"\frac{6}{x}", "2", "division by the unknown: not a polynomial"),  # divided by the unknown
        (r"\frac{x}{0}", "1", "division by zero"),
        (r"\frac{x}{1}", "1", None),  # dividing by one is fine
        (r"\sqrt{x}", "2", "sqrt of the unknown is not a polynomial"),
        ("x + y", "3", "2 unknowns, not one"),
    ],
)
def test_what_is_refused_and_why(left, right, reason):
    if reason is None:
        assert solve_linear(left, right)[2] == 1
        return
    with pytest.raises(ParseError, match=reason):
        solve_linear(left, right)


def test_an_assigned_letter_is_a_value_on_either_side():
    assert solve_linear("2x + y", "y + 4", {"y": F(1)}) == ("x", [2, 1, 0, 5], 2)
    assert solve_linear("y + 4", "2x + y", {"y": F(1)})[2] == 2


def test_function_names_are_not_unknowns():
    assert unknowns(r"\sqrt{4} + x") == {"x"}
    assert unknowns(r"\lfloor y \rfloor + \binom{4}{2}") == {"y"}
    assert unknowns("2a + b", {"a": F(1)}) == {"b"}


@pytest.mark.parametrize(
    "text, value",
    [
        (r"\sqrt{0}", 0),
        (r"\sqrt[3]{0}", 0),
        (r"\sqrt[3]{-27}", -3),  # an odd root of a negative number keeps its sign
        (r"\sqrt[3]{-\frac{8}{27}}", F(-2, 3)),
        (r"\sqrt[3]{27000}", 30),
        (r"\sqrt[3]{1000}", 10),  # the float cube root is 9.999...: the exact check around it finds 10
        (r"\frac {1}   {2}", F(1, 2)),  # spaces before a group
        ("{" * 60 + "1" + "}" * 60, 1),  # nesting up to the limit is fine
        ("(" * 60 + "1" + ")" * 60, 1),
        ("+".join(["(1)"] * 100), 100),  # groups one after another are not nesting
        ("11" + "+1" * 999, 1010),  # 2,000 characters: the longest expression read
    ],
)
def test_roots_groups_and_limits(text, value):
    assert evaluate(parse_expression(text, latex=True)) == value


@pytest.mark.parametrize(
    "text, reason",
    [
        (r"\sqrt{-4}", "even root of a negative number"),
        (r"\sqrt[4]{-16}", "even root of a negative number"),
        (r"\frac{1} ", "missing argument"),
        (r"\frac{1}{2", "unclosed brace"),
        ("{" * 61 + "1" + "}" * 61, "nested deeper than 60"),
        ("(" * 61 + "1" + ")" * 61, "nested deeper than 60"),
        ("(1 + 2", "unclosed parenthesis"),
        ("|1 + 2", "unclosed '|'"),
        ("11" + "+1" * 1000, "longer than 2000"),
    ],
)
def test_what_cannot_be_evaluated_and_why(text, reason):  # (irrational roots are exact values: test_arith)
    with pytest.raises(ParseError, match=re.escape(reason)):
        evaluate(parse_expression(text, latex=True))
