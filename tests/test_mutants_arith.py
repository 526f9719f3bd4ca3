"""Linear equations in one unknown (``arith.solve_linear``): each operation's rule, checked on its own equation;
then each operation at the edges of its range, and the parse tree (chains, spans, nesting) the op extraction reads."""

from __future__ import annotations

import math
import re
from fractions import Fraction as F

import pytest
import sympy

from mycelium_datasets.arith import (
    ParseError,
    apply,
    evaluate,
    linear_form,
    parse_expression,
    polynomial_roots,
    solve_equation,
    solve_linear,
    solve_polynomial,
    unknowns,
    variable_name,
)


def refused(reason: str):
    """The ParseError with exactly this reason: the reason is what a refused step reports (a rejected operation's
    why), so its wording is pinned, not only its key words."""
    return pytest.raises(ParseError, match=f"^{re.escape(reason)}$")


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
        ("x x", "4", "not linear in the unknown"),  # a product of the unknown with itself
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
    with refused(reason):
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
        ("{" * 61 + "1" + "}" * 61, "braces nested deeper than 60"),
        ("(" * 61 + "1" + ")" * 61, "expression nested deeper than 60"),
        ("(1 + 2", "unclosed parenthesis"),
        ("|1 + 2", "unclosed '|'"),
        ("11" + "+1" * 1000, "expression longer than 2000 characters"),
        (r"-4 \text{ or } 4", "prose inside the expression: 'or'"),  # two answers, not a product
    ],
)
def test_what_cannot_be_evaluated_and_why(text, reason):  # (irrational roots are exact values: test_arith)
    with refused(reason):
        evaluate(parse_expression(text, latex=True))


# ---------------------------------------------------------------------------------------------------------------
# Each operation at the edges of its range (apply), and the parse tree: n-ary chains, spans, nesting
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, values, result",
    [
        ("round", [F(5, 2)], 3),  # half up
        ("round", [F(-5, 2)], -2),
        ("round", [F(7, 2), F(0)], 4),
        ("round", [F(314159, 100000), F(2)], F(314, 100)),
        ("round", [F(12345, 1000), F(2)], F(1235, 100)),  # exact: 12.345 is not the float 12.3449999...
        ("round", [F(1, 3), F(12)], F(333333333333, 10**12)),  # up to 12 digits
        ("pow", [F(0), F(0)], 1),
        ("pow", [F(-1), F(0)], 1),
        ("pow", [F(-1), F(611)], -1),
        ("pow", [F(2), F(64)], 2**64),  # the largest exponent
        ("pow", [F(1, 2), F(-64)], 2**64),
        ("root", [F(9), F(2)], 3),
        ("root", [F(2**64), F(64)], 2),  # the largest index
        ("root", [F(1, 8), F(3)], F(1, 2)),  # a root of a number below 1 is positive
        ("sqrt", [F(1, 4)], F(1, 2)),
        ("factorial", [F(0)], 1),
        ("factorial", [F(40)], math.factorial(40)),  # the largest
        ("binom", [F(5), F(0)], 1),
        ("binom", [F(5), F(5)], 1),
        ("binom", [F(3), F(5)], 0),  # more chosen than there are
        ("binom", [F(5), F(-1)], 0),
        ("binom", [F(0), F(0)], 1),
        ("binom", [F(10_000), F(1)], 10_000),  # the largest n
        ("mul", [F(10**59), F(9)], 9 * 10**59),  # 60 digits: the most a value may have
        ("div", [F(1), F(9 * 10**59)], F(1, 9 * 10**59)),
    ],
)
def test_each_operation_at_the_edge_of_its_range(op, values, result):
    assert apply(op, values) == result


@pytest.mark.parametrize(
    "op, values, reason",
    [
        ("round", [F(1, 3), F(13)], "rounding to 13 digits is outside the supported range"),
        ("round", [F(1, 3), F(-1)], "rounding to -1 digits is outside the supported range"),
        ("pow", [F(2), F(65)], "exponent 65 outside the supported range"),
        ("pow", [F(10**30), F(3)], "power with more than 60 digits"),  # 91 digits
        ("root", [F(8), F(1)], "root index 1 outside the supported range"),
        ("root", [F(8), F(3, 2)], "root index 3/2 outside the supported range"),
        ("root", [F(2**65), F(65)], "root index 65 outside the supported range"),
        ("factorial", [F(41)], "factorial of 41 outside the supported range (0..40)"),
        ("factorial", [F(-1)], "factorial of -1 outside the supported range (0..40)"),
        ("factorial", [F(5, 2)], "factorial of 5/2 outside the supported range (0..40)"),
        ("binom", [F(10_001), F(1)], "binomial coefficient (10001 choose 1) outside the supported range"),
        ("binom", [F(5, 2), F(1)], "binomial coefficient (5/2 choose 1) outside the supported range"),
        ("binom", [F(5), F(1, 2)], "binomial coefficient (5 choose 1/2) outside the supported range"),
        ("mul", [F(10**59), F(10)], "value with more than 60 digits"),  # 61 digits
        ("div", [F(1), F(10**60)], "value with more than 60 digits"),  # a 61-digit denominator
        ("div", [F(1), F(0)], "division by zero"),
        ("median", [F(1)], "unknown operation median"),
    ],
)
def test_each_operation_refuses_what_is_out_of_its_range(op, values, reason):
    with refused(reason):
        apply(op, values)


def nodes(node):
    yield node
    for arg in node.args:
        yield from nodes(arg)


@pytest.mark.parametrize(
    "text",
    ["2 + 3*4 - 5", "-(2 + 3)*4", "2^3^2 + 1", "3! + 20% * 5 - (10 + 10)%", "|2 - 7| + sqrt(16)", "(8/4)/2 - -3"],
)
def test_every_node_spans_the_text_it_was_parsed_from(text):
    # the span of each sub-expression, parsed on its own, has the same value
    for node in nodes(parse_expression(text)):
        a, b = node.span
        assert evaluate(parse_expression(text[a:b])) == evaluate(node), (text[a:b], node.op)


def test_a_group_spans_its_parentheses_and_a_parenthesized_number_spans_the_number():
    # (an operation whose first or last operand is a parenthesized number ends at the number: no caller reads an
    # operation's span today, only the numbers')
    tree = parse_expression("2*(3+4) - (5) + 1")
    group, five = tree.args[0].args[0].args[1], tree.args[0].args[1]
    assert tree.span == (0, 17) and group.span == (2, 7) and five.span == (11, 12)


@pytest.mark.parametrize(
    "a, symbol, op", [("1", "+", "add"), ("2", "*", "mul"), ("9", "-", "sub"), ("16", "/", "div")]
)
def test_a_chain_of_one_operation_is_one_operation_unless_parenthesized(a, symbol, op):
    chain = parse_expression(f"{a}{symbol}4{symbol}2")
    assert chain.op == op and len(chain.args) == 3
    grouped = parse_expression(f"({a}{symbol}4){symbol}2")  # (a op b) op c: two operations, as the CoT wrote them
    assert grouped.op == op and len(grouped.args) == 2 and grouped.args[0].op == op
    assert evaluate(chain) == evaluate(grouped)


def test_numbers_signs_and_percents_are_numbers_not_operations():
    assert parse_expression("-5").op == "num" and evaluate(parse_expression("-5")) == -5
    assert parse_expression("-(5)").op == "num"
    assert parse_expression("20%").op == "num" and evaluate(parse_expression("20%")) == F(1, 5)
    assert parse_expression("(10 + 10)%").op == "percent" and evaluate(parse_expression("(10 + 10)%")) == F(1, 5)
    assert parse_expression("-(2 + 3)").op == "neg"
    assert evaluate(parse_expression("+5")) == 5 and evaluate(parse_expression("2 * +3")) == 6
    assert evaluate(parse_expression("2**3")) == 8


@pytest.mark.parametrize(
    "text, value",
    [
        ("0.3333333333", F(1, 3)),  # ten decimals: a float printed in full, read as the simple fraction
        ("0.333333333", F(333333333, 10**9)),  # nine: as written
        ("22.000000000000004", 22),
        ("0.0009990009990009990", F(1, 1000)),  # the simple fraction has a denominator of at most 1000
    ],
)
def test_a_float_printed_in_full_is_the_simple_fraction(text, value):
    assert evaluate(parse_expression(text)) == value


@pytest.mark.parametrize("before", ["(1) + ", "--1 + ", "2^2 + ", "|1| + ", "sqrt(1) + "])
def test_nesting_is_counted_from_where_it_is_not_from_what_came_before(before):
    # a finished group, sign, power or function gives its level back: the next one may nest to the limit again
    assert evaluate(parse_expression(before + "(" * 60 + "1" + ")" * 60)) == evaluate(parse_expression(before + "1"))
    with pytest.raises(ParseError, match="nested deeper than 60"):
        parse_expression(before + "(" * 61 + "1" + ")" * 61)


def test_latex_products_with_functions_and_deep_roots():
    assert evaluate(parse_expression(r"3\sqrt{4}", latex=True)) == 6  # an implicit product with a function
    assert evaluate(parse_expression(r"2 \lfloor 2.5 \rfloor", latex=True)) == 4
    assert evaluate(parse_expression(r"\sqrt[3]{8} + \sqrt[3]{27}", latex=True)) == 5  # each index is its own
    assert evaluate(parse_expression(r"\sqrt{" * 40 + "1" + "}" * 40, latex=True)) == 1


def test_an_assigned_letter_does_not_split_a_function_or_a_constant():
    assert evaluate(parse_expression(r"s + \sqrt{9}", latex=True, variables={"s": F(4)})) == 7
    value = evaluate(parse_expression(r"2\pi", latex=True, variables={"p": F(3)}))
    assert value == 2 * sympy.pi


def test_the_k_th_real_root_of_a_polynomial():
    x2_minus_4 = [F(1), F(0), F(-4)]  # highest degree first
    assert [apply("poly_root", [*x2_minus_4, F(k)]) for k in (0, 1)] == [-2, 2]  # ascending
    for k in (F(2), F(-1), F(1, 2)):  # no such root; a root index is a whole number
        with pytest.raises(ParseError):
            apply("poly_root", [*x2_minus_4, k])
    with pytest.raises(ParseError):
        apply("poly_root", [F(1), F(0), F(1), F(0)])  # x^2 + 1 has no real root


@pytest.mark.parametrize(
    "text, name", [("a_{12}", "a_12"), (r"\alpha", "α"), (r"\theta", "θ"), (" x ", "x"), (r"\omega", r"\omega")]
)
def test_variable_names_as_expressions_write_them(text, name):
    assert variable_name(text) == name


SQRT2, SQRT3 = apply("sqrt", [F(2)]), apply("sqrt", [F(3)])


@pytest.mark.parametrize(
    "coefficients, roots",
    [
        ([F(2), F(-6)], [3]),  # degree 1
        ([F(1), F(-2), F(1)], [1]),  # a double root: discriminant 0, one distinct root
        ([F(4), F(-4), F(1)], [F(1, 2)]),
        ([F(2), F(1), F(-13), F(6)], [-3, F(1, 2), 2]),  # (2u - 1)(u - 2)(u + 3): made monic, fractional root
        ([F(1), F(0), F(-5), F(0), F(4)], [-2, -1, 1, 2]),  # degree 4, the largest
        ([F(0), F(0), F(1), F(-1)], [1]),  # leading zeros do not count
    ],
)
def test_polynomial_roots_distinct_and_ascending(coefficients, roots):
    assert polynomial_roots(coefficients) == roots


def test_polynomial_roots_with_irrational_coefficients_are_decided_numerically():
    # u^2 + sqrt2 u - sqrt3: discriminant 2 + 4 sqrt3 > 0; with + sqrt3 it is 2 - 4 sqrt3 < 0
    low, high = polynomial_roots([F(1), SQRT2, apply("neg", [SQRT3])])
    assert float(low) < 0 < float(high)
    with pytest.raises(ParseError, match="no real root"):
        polynomial_roots([F(1), SQRT2, SQRT3])
    # a discriminant between 0 and 1 (1/2 + sqrt3/25) is still positive
    assert (
        len(polynomial_roots([F(1), apply("div", [SQRT2, F(2)]), apply("div", [apply("neg", [SQRT3]), F(100)])])) == 2
    )
    # a negative leading coefficient: the formula gives the larger root first; they come back ascending
    assert polynomial_roots([F(-1), F(0), F(2)]) == [apply("neg", [SQRT2]), SQRT2]


@pytest.mark.parametrize(
    "coefficients, reason",
    [
        ([F(0), F(5)], "no unknown left in the equation"),  # 0 u + 5
        ([F(1), F(0), F(0), F(0), F(0), F(-1)], "polynomial of degree above 4"),
        ([F(1), F(0), F(1)], "no real root"),
        ([F(1), F(0), F(0), F(-2)], "no rational root"),  # u^3 = 2
        ([F(1), SQRT2, F(0), F(-1)], "a cubic or quartic with irrational coefficients"),  # rational roots only
    ],
)
def test_polynomial_roots_refused_and_why(coefficients, reason):
    with refused(reason):
        polynomial_roots(coefficients)


def test_powers_of_the_unknown_and_of_numbers_in_an_equation():
    assert solve_linear("2^5 x", "64")[2] == 2  # a power of a number is a number, whatever its exponent
    assert solve_linear("x^0 + x", "3")[2] == 2  # u^0 is 1
    assert solve_linear("x - x", "x - 2") == ("x", [0, 0, 1, -2], 2)  # a side whose unknown cancels
    assert solve_polynomial("x^2 x^2", "16")[2] == [-2, 2]  # degree 4 through a product
    assert solve_polynomial("x^4", "16")[2] == [-2, 2]  # and through a power
    with pytest.raises(ParseError):
        solve_linear("x^{1/2} + x", "3")  # not 1 + x: a root of the unknown is not a polynomial
    for left in ("x x^4", "x^{1/2}", "x^5"):  # degree 5; a power that is not a whole number
        with pytest.raises(ParseError):
            solve_polynomial(left, "32")


def test_symbolic_values_stay_real_and_within_the_digit_limit():
    half = apply("mul", [SQRT2, apply("div", [SQRT2, F(4)])])
    assert half == F(1, 2) and isinstance(half, F)  # a rational result is a Fraction again, denominator and all
    with pytest.raises(ParseError):  # the square root of 1 - sqrt2 < 0 is not real
        apply("pow", [apply("sub", [F(1), SQRT2]), F(1, 2)])
    apply("mul", [F(9 * 10**59), SQRT2])  # a 60-digit coefficient: the most
    apply("mul", [F(1, 9 * 10**59), SQRT2])
    for big in (F(10**60), F(1, 10**60)):  # 61 digits in the numerator or the denominator
        with pytest.raises(ParseError):
            apply("mul", [big, SQRT2])


ONE_PLUS_SQRT2 = apply("add", [F(1), SQRT2])


@pytest.mark.parametrize(
    "op, values, expected",
    [
        ("add", [SQRT2, F(1)], 2**0.5 + 1),
        ("mul", [SQRT2, SQRT3], 6**0.5),
        ("mul", [ONE_PLUS_SQRT2, apply("sub", [F(1), SQRT2])], -1),  # rational again
        ("sub", [SQRT2, F(1), F(1)], 2**0.5 - 2),
        ("div", [SQRT2, F(4)], 2**0.5 / 4),
        ("div", [F(1), SQRT2], 0.5**0.5),
        ("neg", [SQRT2], -(2**0.5)),
        ("percent", [SQRT2], 2**0.5 / 100),
        ("pow", [SQRT2, F(2)], 2),
        ("pow", [SQRT2, F(-2)], 0.5),
        ("pow", [SQRT2, F(0)], 1),
        ("pow", [ONE_PLUS_SQRT2, F(2)], (1 + 2**0.5) ** 2),
        ("pow", [ONE_PLUS_SQRT2, F(-1)], 2**0.5 - 1),  # 1/(1 + sqrt2), rationalized
        ("pow", [ONE_PLUS_SQRT2, F(12)], (1 + 2**0.5) ** 12),  # the largest power of a sum
        ("pow", [SQRT2, F(1, 2)], 2**0.25),
        ("pow", [SQRT2, F(64)], 2**32),
        ("sqrt", [SQRT2], 2**0.25),
        ("root", [SQRT2, F(4)], 2**0.125),
        ("root", [apply("neg", [SQRT2]), F(3)], -(2 ** (1 / 6))),  # an odd root keeps the sign
        ("root", [SQRT2, F(64)], 2 ** (1 / 128)),
        ("root", [SQRT2, F(2)], 2**0.25),
        ("abs", [apply("neg", [SQRT2])], 2**0.5),
        ("abs", [SQRT2], 2**0.5),
        ("floor", [SQRT2], 1),
        ("ceil", [SQRT2], 2),
        ("round", [SQRT2], 1),
        ("round", [apply("add", [F(1, 2), apply("div", [SQRT2, F(1000)])])], 1),
        ("round", [SQRT2, F(0)], 1),
        ("round", [SQRT2, F(2)], 1.41),
        ("round", [SQRT2, F(12)], 1.414213562373),
        ("solve", [SQRT2, F(1), F(0), F(3)], 2**0.5),  # sqrt2 u + 1 = 3
        ("solve", [F(2), SQRT2, F(1), F(0)], -(2**0.5)),
    ],
)
def test_each_operation_on_an_irrational_value(op, values, expected):
    result = apply(op, values)
    assert float(result) == pytest.approx(expected, rel=1e-12)
    if float(expected).is_integer() or op == "round":
        assert isinstance(result, F)  # a rational result is a Fraction


@pytest.mark.parametrize(
    "op, values, reason",
    [
        # refused, though not as "division by zero": _apply_symbolic's zero test never holds for a sympy 0
        ("div", [SQRT2, F(0)], "not a finite real number"),
        ("pow", [SQRT2, F(65)], "exponent 65 outside the supported range"),
        ("pow", [SQRT2, F(1, 65)], "exponent 1/65 outside the supported range"),
        ("pow", [ONE_PLUS_SQRT2, F(13)], "power of a sum with exponent above 12"),
        (
            "pow",
            [apply("add", [SQRT2, SQRT3, apply("sqrt", [F(5)]), apply("sqrt", [F(7)]), F(1)]), F(12)],
            "power of a sum with more than 500 terms to expand",
        ),  # 1820 terms
        ("pow", [SQRT2, SQRT2], "exponent sqrt(2) outside the supported range"),
        ("pow", [apply("sub", [F(1), SQRT2]), F(1, 2)], "even root of a negative number"),  # 1 - sqrt2 < 0
        ("sqrt", [apply("neg", [SQRT2])], "even root of a negative number"),
        ("root", [apply("neg", [SQRT2]), F(4)], "even root of a negative number"),
        ("root", [SQRT2, F(1)], "root index 1 outside the supported range"),
        ("root", [SQRT2, F(65)], "root index 65 outside the supported range"),
        ("root", [SQRT2, F(5, 2)], "root index 5/2 outside the supported range"),
        ("round", [SQRT2, F(13)], "rounding to 13 digits is outside the supported range"),
        ("round", [SQRT2, F(-1)], "rounding to -1 digits is outside the supported range"),
        ("solve", [SQRT2, F(0), SQRT2, F(1)], "the unknown cancels: no single solution"),
        ("binom", [SQRT2, F(1)], "binom of an irrational number is not supported"),
        ("mul", [F(10**60), SQRT2], "value with more than 60 digits"),
        (
            "mul",
            [apply("add", [SQRT2, SQRT3, apply("sqrt", [F(5)]), F(1)])] * 5,
            "product with more than 500 terms to expand",
        ),
        ("poly_root", [F(1), F(0), F(-4), F(2)], "root 2 of a polynomial with 2 real roots"),
        ("poly_root", [F(1), F(0), F(-4), F(1, 2)], "root index 1/2 is not a whole number"),
        (
            "mul",
            [apply("add", [apply("sqrt", [F(p)]) for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)])]
            * 2,
            "symbolic value with more than 160 nodes",
        ),
    ],
)
def test_each_operation_on_an_irrational_value_refuses_what_it_cannot_do(op, values, reason):
    with refused(reason):
        apply(op, values)


def test_a_root_of_a_fraction_whose_parts_are_not_powers_is_irrational():
    # the integer-root fast path answers for both parts at once: each part alone would fall back to sympy
    assert float(apply("sqrt", [F(2, 3)])) == pytest.approx((2 / 3) ** 0.5, rel=1e-12)
    assert float(apply("root", [F(2, 3), F(3)])) == pytest.approx((2 / 3) ** (1 / 3), rel=1e-12)
    assert apply("sqrt", [F(4, 9)]) == F(2, 3) and apply("root", [F(8, 27), F(3)]) == F(2, 3)


def test_poly_root_with_irrational_coefficients_and_assigned_letters():
    coefficients = [F(1), SQRT2, apply("neg", [SQRT3])]  # u^2 + sqrt2 u - sqrt3
    roots = polynomial_roots(coefficients)
    assert [apply("poly_root", [*coefficients, F(k)]) for k in (0, 1)] == roots
    assert solve_polynomial("x^2", "a", {"a": F(4)}) == ("x", [1, 0, -4], [-2, 2])  # a was assigned earlier


@pytest.mark.parametrize(
    "solver, left, right, reason",
    [
        (solve_polynomial, "2x", "4", "not a polynomial equation of degree 2 or more"),  # linear
        (solve_equation, "x^2 + x", "x^2 + 3", "not a polynomial equation of degree 2 or more"),  # x^2 cancels
        (solve_polynomial, "x^5", "32", "a power of the unknown that is not a small whole number"),
        (solve_polynomial, "x^{1/2}", "32", "a power of the unknown that is not a small whole number"),
        (solve_polynomial, "x x^4", "32", "polynomial of degree above 4"),
        (solve_polynomial, "x - x", "3", "the unknown cancels: no single solution"),
        (solve_linear, "x^2", "4", "not linear in the unknown"),
    ],
)
def test_equations_refused_and_why(solver, left, right, reason):
    with refused(reason):
        solver(left, right)


@pytest.mark.parametrize(
    "text, form",
    [("2x + 3", (2, 3)), (r"\frac{x}{4} - 1", (F(1, 4), -1)), ("5", (0, 5)), ("x", (1, 0)), ("x - x + 4", (0, 4))],
)
def test_linear_form_reads_a_and_b_of_a_linear_side(text, form):
    # a public helper (a * u + b of one side) that solve_equation no longer calls: it reads polynomial_form itself
    assert linear_form(parse_expression(text, latex=True, variables={"x": None})) == form


def test_linear_form_refuses_a_side_of_higher_degree():
    with refused("not linear in the unknown"):
        linear_form(parse_expression("x^2 + 1", latex=True, variables={"x": None}))


FIVE = apply("add", [F(1), SQRT2, SQRT3, apply("sqrt", [F(5)]), apply("sqrt", [F(7)])])  # a sum of 5 terms
FOUR = apply("add", [F(1), SQRT2, SQRT3, apply("sqrt", [F(5)])])  # of 4


def test_expansion_limits_at_their_edges():
    f5, f4 = float(FIVE), float(FOUR)
    # a product: its sums' term counts multiplied (a number counts once): 5 * 5 * 5 * 4 = 500 is the most
    assert float(apply("mul", [FIVE, FIVE, FIVE, FOUR])) == pytest.approx(f5**3 * f4, rel=1e-12)
    assert float(apply("mul", [FOUR] * 4 + [F(2)])) == pytest.approx(2 * f4**4, rel=1e-12)  # 256 terms
    with refused("product with more than 500 terms to expand"):
        apply("mul", [FOUR] * 5 + [F(2)])  # 1024
    # a power of a sum: (3 terms)^12 expands to C(14, 12) = 91 terms
    three = apply("add", [F(1), SQRT2, SQRT3])
    assert float(apply("pow", [three, F(12)])) == pytest.approx(float(three) ** 12, rel=1e-12)
    # an exponent's denominator up to 64
    assert float(apply("pow", [SQRT2, F(1, 64)])) == pytest.approx(2 ** (1 / 128), rel=1e-12)


def test_a_product_of_degree_5_is_refused_even_when_a_later_term_cancels_it():
    with refused("polynomial of degree above 4"):
        solve_polynomial("x^3 x^2 - x^3 x^2 + x^2", "4")


def test_symbolic_values_are_equal_by_value_not_by_how_they_were_made():
    from mycelium_datasets.arith import values_equal

    assert values_equal(apply("div", [F(2), SQRT2]), SQRT2)  # 2 / sqrt2, rationalized
    assert values_equal(
        apply("mul", [ONE_PLUS_SQRT2, ONE_PLUS_SQRT2]), apply("add", [F(3), apply("mul", [F(2), SQRT2])])
    )
    assert not values_equal(ONE_PLUS_SQRT2, SQRT2)  # they differ by exactly 1
    assert not values_equal(SQRT2, F(1)) and values_equal(F(1, 2), F(2, 4))
