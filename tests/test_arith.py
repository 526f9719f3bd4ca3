"""The safe arithmetic parser: what it understands, and bombs / code that give a ParseError quickly."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mycelium_datasets.arith import (
    ParseError,
    evaluate,
    format_value,
    parse_expression,
    parse_value,
    solve_linear,
    solve_polynomial,
    values_equal,
)
from mycelium_datasets.systems import linear_equation, solve2, solve_system


@pytest.mark.parametrize(
    "text, value, top",
    [
        ("16 - 3 - 4", 9, "sub"),
        ("48/2", 24, "div"),
        ("$1,200 * 20%", 240, "mul"),
        ("12 x 2", 24, "mul"),
        ("5 × 3 ÷ 3", 5, "div"),
        ("0.5 * 258 + 24", 153, "add"),
        ("2(62+18)", 160, "mul"),
        ("2^10", 1024, "pow"),
        ("-3 + 5", 2, "add"),
        ("22.000000000000004 - 4", 18, "sub"),
    ],
)
def test_plain_arithmetic(text, value, top):
    node = parse_expression(text)
    assert evaluate(node) == value and node.op == top


@pytest.mark.parametrize(
    "text, value",
    [
        (r"\frac{1}{2} + \frac{1}{3}", Fraction(5, 6)),
        (r"\dfrac{3}{4} \cdot 8", 6),
        (r"\sqrt{16} \times 3", 12),
        (r"\left(2+3\right)^{2}", 25),
        (r"2^{3} \div 4", 2),
        (r"\frac12 + \tfrac{1}{3}", Fraction(5, 6)),  # \frac without braces, \tfrac
        (r"\dfrac{7!}{2! \times 2!}", 1260),  # factorials
        (r"\binom{5}{4}\cdot \dbinom{10}{8}", 225),
        (r"\sqrt[3]{27} + \sqrt{\frac{9}{4}}", Fraction(9, 2)),
        (r"\left\lfloor \frac{7}{2} \right\rfloor + \lceil 2.1 \rceil", 6),
        (r"\lfloor \frac{7}{2} \rfloor - \lceil 2.1 \rceil", 0),  # floor and ceil swapped would give 4 - 2
        (r"\left|-\frac{8}{3}\right| + |1-2|", Fraction(11, 3)),
        (r"32{,}348 + 1\,000 + 1,\!000", 34348),  # thousands separators
        (r"60^\circ + 30^{\circ}", 90),  # degrees are the number
        (r"2(21\text{ inches})", 42),  # units in \text{} are dropped
        (r"10\% \cdot 50", 5),
        (r"\boxed{4} \, + \! 1 ~", 5),
        (r"(-1)^{611} + 3^{11} + (-3)^{11}", -1),  # a large exponent of -1 does not grow
        (r"8^{2/3}", 4),
        (r"[3-1] \cdot 2", 4),
    ],
)
def test_latex(text, value):
    assert evaluate(parse_expression(text, latex=True)) == value


@pytest.mark.parametrize(
    "text",
    [
        r"10^{10^{10}}",
        r"9^{9^{9^9}}",
        r"\underbrace{\underbrace{1+1}_{2}}_{3}",
        "{" * 2000 + "1" + "}" * 2000,
        r"\frac{1}{0}",
        r"\frac{1}{2",
        "__import__('os').system('touch /tmp/x')",
        "1 +",
        "(((1)",
        "9" * 5000,
        "3x - 9",  # algebra: x is a variable here, not a product
        r"\frac{1}{2}(3x-9)",
        r"\pi r^2",  # r is not assigned
        r"\sqrt{-2}",  # not a real number
        r"(\sqrt{2}+\sqrt{3}+\sqrt{5}+\sqrt{7})^{64}",  # symbolic bombs: a sum to a large power, huge radicands,
        r"\sqrt{10^{60}+1}^{3} \cdot \sqrt{3}",  # too many digits,
        r"\pi^{1000}",  # a large exponent,
        r"\sqrt{2}^{\sqrt{2}}",  # an irrational exponent,
        r"(\sqrt{2}+\sqrt{3}+\sqrt{5}+\sqrt{7}+\sqrt{11}+\sqrt{13}+\sqrt{17}+\sqrt{19})^{12}",  # too many terms,
        r"(\sqrt{2}+\sqrt[3]{3}+\sqrt[5]{5}+\sqrt[7]{7})^{12}",  # too many nodes,
        r"\binom{\sqrt{2}}{1}",
        "100!",  # factorials are limited
        r"\binom{100000}{50000}",
        r"2^{1000}",
        r"-4\text{ or }x",  # prose, not a product
        r"1 + 2 + \dots + 10",
    ],
)
def test_bombs_and_code_are_parse_errors(text):
    started = time.monotonic()
    with pytest.raises(ParseError):
        evaluate(parse_expression(text, latex=True))
    assert time.monotonic() - started < 2


def test_format_value():
    assert format_value(Fraction(24)) == "24"
    assert format_value(Fraction(1, 2)) == "0.5"
    assert format_value(Fraction(1, 3)) == "1/3"
    assert format_value(Fraction(1, 5)) == "0.2"  # 5 divides a power of ten as 2 does
    assert format_value(Fraction(-3, 40)) == "-0.075"
    assert format_value(Fraction(7, 30)) == "7/30"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.,+-*/x^%()$ {}\\fracsqrt")), max_size=40))
def test_random_text_gives_a_value_or_a_parse_error(text):
    started = time.monotonic()
    try:
        evaluate(parse_expression(text, latex=True))
    except ParseError:
        pass
    assert time.monotonic() - started < 2


def test_assigned_variables():
    assert evaluate(parse_expression(r"2x + \frac{1}{x}", latex=True, variables={"x": Fraction(2)})) == Fraction(9, 2)
    assert evaluate(parse_expression("a_1 + b", latex=True, variables={"a_1": Fraction(1), "b": Fraction(2)})) == 3
    with pytest.raises(ParseError):  # an unassigned letter
        parse_expression("2y + 1", latex=True, variables={"x": Fraction(2)})
    with pytest.raises(ParseError):  # plain text never reads variables
        parse_expression("3x - 9", variables={"x": Fraction(2)})


@pytest.mark.parametrize(
    "left, right, name, value",
    [
        ("2x", "3", "x", Fraction(3, 2)),
        (r"\frac{1}{2}(3x-9)", "x+37", "x", 83),
        ("34 - c", "1^2", "c", 33),
        ("124+x+x", "180", "x", 28),
    ],
)
def test_linear_equations_in_one_unknown(left, right, name, value):
    assert solve_linear(left, right)[0::2] == (name, value)


@pytest.mark.parametrize(
    "left, right", [("x^2", "4"), ("x + y", "3"), ("x + 1", "x + 2"), ("2^x", "8"), (r"10^{10^{10}} x", "1")]
)
def test_nonlinear_or_underdetermined_equations_are_refused(left, right):
    with pytest.raises(ParseError):
        solve_linear(left, right)


@pytest.mark.parametrize(
    "text, latex",
    [
        (r"\sqrt{117}", r"3 \sqrt{13}"),
        (r"\frac{4}{3} \pi \cdot 6^3", r"288 \pi"),
        (r"\frac{1+\sqrt5}{2}", r"\frac{1}{2} + \frac{\sqrt{5}}{2}"),
        (r"\frac{1}{1+\sqrt{2}}", r"-1 + \sqrt{2}"),  # a radical denominator is rationalized
        (r"\sqrt[3]{-16}", r"- 2 \sqrt[3]{2}"),
        (r"2^{\frac{2}{3}}", r"2^{\frac{2}{3}}"),
    ],
)
def test_irrational_values_are_exact_and_read_back(text, latex):
    value = evaluate(parse_expression(text, latex=True))
    assert not isinstance(value, Fraction) and format_value(value) == latex
    assert values_equal(parse_value(format_value(value)), value)


def test_irrational_values_that_are_rational_become_fractions_again():
    cases = [(r"\sqrt{2}^2", 2), (r"\sqrt{8} \cdot \sqrt{2}", 4), (r"\frac{\sqrt{68}}{2} \cdot \sqrt{17}", 17)]
    for text, value in cases:
        result = evaluate(parse_expression(text, latex=True))
        assert isinstance(result, Fraction) and result == value


@pytest.mark.parametrize(
    "left, right, name, coefficients, roots",
    [
        ("N^2", "121", "N", [1, 0, -121], [-11, 11]),
        ("0", "4x(x-5)", "x", [-4, 20, 0], [0, 5]),
        ("x^3-6x^2+11x", "6", "x", [1, -6, 11, -6], [1, 2, 3]),
    ],
)
def test_solve_polynomial(left, right, name, coefficients, roots):
    assert solve_polynomial(left, right) == (name, coefficients, roots)


@pytest.mark.parametrize(
    "first, second, names, values",
    [
        (("y", "x + 140"), ("y + x", "198"), ("x", "y"), ["29", "169"]),  # gsm_symbolic's fence
        (("d+n", "11"), ("10d+5n", "75"), ("d", "n"), ["4", "7"]),  # MATH-500 dev 187
        (("j - 5", "3(b - 5)"), ("j", "2b"), ("b", "j"), ["10", "20"]),  # GSM8K train 4984
        ((r"x + \sqrt{2} y", "3"), ("x - y", "0"), ("x", "y"), [r"-3 + 3 \sqrt{2}", r"-3 + 3 \sqrt{2}"]),
    ],
)
def test_systems_of_two_linear_equations(first, second, names, values):
    (names_1, row_1), (names_2, row_2) = linear_equation(*first), linear_equation(*second)
    assert names_1 == names_2 == names
    u, v = solve_system(row_1, row_2)
    assert [format_value(u), format_value(v)] == values
    # the solve2 op gives u; v is the same op with each equation's two coefficients swapped
    (a1, b1, c1), (a2, b2, c2) = row_1, row_2
    assert values_equal(solve2([b1, a1, c1, b2, a2, c2]), v)


def test_systems_refuse_what_is_not_two_independent_linear_equations():
    refused = [("x y", "3"), ("x", "3"), ("x + y + z", "1"), ("x / y", "2"), ("x^2 + y", "1"), ("x + y - y", "3")]
    for left, right in refused:
        with pytest.raises(ParseError):
            linear_equation(left, right)
    with pytest.raises(ParseError, match="not independent"):  # the same equation twice over
        solve_system(linear_equation("x + y", "2")[1], linear_equation("2x + 2y", "4")[1])


def test_solve_polynomial_irrational_roots_and_refusals():
    assert [format_value(r) for r in solve_polynomial("x^2 - x - 1", "0")[2]] == [
        r"\frac{1}{2} - \frac{\sqrt{5}}{2}",
        r"\frac{1}{2} + \frac{\sqrt{5}}{2}",
    ]
    for left, right in [("x^2 + 1", "0"), ("x^5", "1"), ("(x+1)^2", "x^2 + 2x + 1"), ("x y", "2"), ("x^{x}", "4")]:
        with pytest.raises(ParseError):
            solve_polynomial(left, right)
