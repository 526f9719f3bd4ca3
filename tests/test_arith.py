"""The safe arithmetic parser: what it understands, and bombs / code that give a ParseError quickly."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mycelium_datasets.arith import ParseError, evaluate, format_value, parse_expression


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


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.,+-*/x^%()$ {}\\fracsqrt")), max_size=40))
def test_random_text_gives_a_value_or_a_parse_error(text):
    started = time.monotonic()
    try:
        evaluate(parse_expression(text, latex=True))
    except ParseError:
        pass
    assert time.monotonic() - started < 2
