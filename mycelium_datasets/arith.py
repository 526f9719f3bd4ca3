"""A small, safe arithmetic parser and exact evaluator for the equations a chain of thought writes.

Text from data or models is never executed: expressions are tokenized and parsed by recursive descent into a tree
of operations, and evaluated with :class:`fractions.Fraction` under size limits. Plain GSM8K arithmetic
(``16 - 3 - 4``, ``48/2``, ``$1,200``, ``20%``, ``x``/``×``/``*``/``÷``, ``^``, parentheses) and a subset of LaTeX
(``\\frac``/``\\dfrac``, ``\\times``, ``\\cdot``, ``\\div``, ``^{...}``, ``\\sqrt{...}``, ``\\left(``...``\\right)``)
are understood; anything else is a :class:`ParseError` with a reason, never a crash or a hang.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

MAX_TEXT = 2_000  # characters of one expression
MAX_DEPTH = 60  # nesting of parentheses / braces
MAX_DIGITS = 60  # digits of any intermediate value (numerator or denominator)
MAX_EXPONENT = 64


class ParseError(ValueError):
    """An expression could not be parsed or evaluated within the limits; the message says why."""


@dataclass
class Node:
    """A number (``op == "num"``, ``value``, ``span`` = char range in the parsed text) or an operation."""

    op: str
    value: Fraction | None = None
    args: list[Node] = field(default_factory=list)
    span: tuple[int, int] = (0, 0)
    closed: bool = False  # written inside parentheses: not merged into an enclosing chain


_LATEX_SIMPLE = [
    (r"\\left\s*([(\[])", r"\1"),
    (r"\\right\s*([)\]])", r"\1"),
    (r"\\(?:times|cdot)", "*"),
    (r"\\div", "/"),
    (r"\\[,;!]|\\quad|\\qquad", " "),
    (r"\\%", "%"),
    (r"\\\$", "$"),
]


def latex_to_plain(text: str) -> str:
    """Rewrite the supported LaTeX into plain arithmetic (``\\frac{a}{b}`` -> ``((a)/(b))``, ...), linearly."""
    if len(text) > MAX_TEXT:
        raise ParseError(f"expression longer than {MAX_TEXT} characters")
    for pattern, repl in _LATEX_SIMPLE:
        text = re.sub(pattern, repl, text)
    out, i = [], 0
    while i < len(text):
        m = re.match(r"\\[dt]?frac\s*", text[i:])
        if m:
            i += m.end()
            num, i = _braced(text, i)
            den, i = _braced(text, i)
            out.append(f"(({latex_to_plain(num)})/({latex_to_plain(den)}))")
            continue
        m = re.match(r"\\sqrt\s*", text[i:])
        if m:
            i += m.end()
            arg, i = _braced(text, i)
            out.append(f"sqrt({latex_to_plain(arg)})")
            continue
        if text[i] == "{":
            arg, i = _braced(text, i)
            out.append(f"({latex_to_plain(arg)})")
            continue
        if text[i] == "\\":
            m = re.match(r"\\[A-Za-z]+", text[i:])
            raise ParseError(f"unsupported LaTeX command {m.group(0) if m else text[i : i + 2]!r}")
        out.append(text[i])
        i += 1
    return "".join(out)


def _braced(text: str, i: int) -> tuple[str, int]:
    """The content of the ``{...}`` group starting at ``text[i]`` (or a single character), and the index after it."""
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        raise ParseError("missing argument")
    if text[i] != "{":
        return text[i], i + 1
    depth, j = 0, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError(f"braces nested deeper than {MAX_DEPTH}")
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
        j += 1
    raise ParseError("unclosed brace")


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)|(?P<op>\*\*|[-+*/×÷^%()])|(?P<sqrt>sqrt)"
    r"|(?P<cur>[$€£]))"
)


_TIMES_X = re.compile(r"(?<=[\d)%])\s+x\s+(?=[$€£(]?\d)|(?<=\d)x(?=\d)")


def tokenize(text: str) -> list[tuple[str, str, int, int]]:
    """``(kind, text, start, end)`` tokens of a plain arithmetic expression; anything else is a ParseError."""
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            raise ParseError(f"unexpected character {text[i]!r} at {i}")
        kind = m.lastgroup
        if kind != "cur":
            tokens.append((kind, m.group(kind), m.start(kind), m.end(kind)))
        i = m.end()
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*; unary := '-' unary | power;
    power := postfix ('^' unary)?; postfix := atom '%'?; atom := num | '(' expr ')' | sqrt '(' expr ')'."""

    def __init__(self, tokens):
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None, 0, 0)

    def take(self):
        token = self.peek()
        self.i += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ParseError("empty expression")
        node = self.expr()
        if self.i != len(self.tokens):
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return node

    def _nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"expression nested deeper than {MAX_DEPTH}")

    def expr(self) -> Node:
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = "add" if self.take()[1] == "+" else "sub"
            right = self.term()
            node = self._combine(op, node, right)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek()[1] in ("*", "/", "×", "÷", "(") or self.peek()[0] == "sqrt":
            if self.peek()[1] == "(" or self.peek()[0] == "sqrt":  # implicit product: 2(62+18), 3\sqrt{2}
                op = "mul"
            else:
                op = "div" if self.take()[1] in ("/", "÷") else "mul"
            right = self.unary()
            node = self._combine(op, node, right)
        return node

    @staticmethod
    def _combine(op: str, left: Node, right: Node) -> Node:
        # chains of the same associative operation become one n-ary op: 12 + 24 + 34 -> add(12, 24, 34)
        # and left-associative chains of sub/div: 16 - 3 - 4 -> sub(16, 3, 4)
        if op in ("add", "mul", "sub", "div") and left.op == op and not left.closed:
            left.args.append(right)
            left.span = (left.span[0], right.span[1])
            return left
        return Node(op, args=[left, right], span=(left.span[0], right.span[1]))

    def unary(self) -> Node:
        if self.peek()[1] == "-":
            start = self.take()[2]
            self._nest()
            inner = self.unary()
            self.depth -= 1
            if inner.op == "num":
                return Node("num", value=-inner.value, span=(start, inner.span[1]))
            return Node("neg", args=[inner], span=(start, inner.span[1]))
        if self.peek()[1] == "+":
            self.take()
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.peek()[1] in ("^", "**"):
            self.take()
            self._nest()
            exponent = self.unary()
            self.depth -= 1
            return Node("pow", args=[base, exponent], span=(base.span[0], exponent.span[1]))
        return base

    def postfix(self) -> Node:
        node = self.atom()
        if self.peek()[1] == "%":
            end = self.take()[3]
            if node.op == "num":  # "20%" is the number 0.2, written in percent
                return Node("num", value=node.value / 100, span=(node.span[0], end))
            return Node("percent", args=[node], span=(node.span[0], end))
        return node

    def atom(self) -> Node:
        kind, text, start, end = self.take()
        if kind == "num":
            value = Fraction(text.replace(",", ""))
            if "." in text and len(text.split(".")[1]) >= 10:
                # a float printed in full (22.000000000000004, 0.6666666666666666) means the simple fraction
                value = value.limit_denominator(1000)
            return Node("num", value=value, span=(start, end))
        if kind == "sqrt" or text == "(":
            if kind == "sqrt" and self.take()[1] != "(":
                raise ParseError("sqrt needs parentheses")
            self._nest()
            inner = self.expr()
            self.depth -= 1
            close = self.take()
            if close[1] != ")":
                raise ParseError("unclosed parenthesis")
            if kind == "sqrt":
                return Node("sqrt", args=[inner], span=(start, close[3]))
            inner.span = (start, close[3]) if inner.op != "num" else inner.span
            inner.closed = True  # (a - b) - c keeps its parentheses: sub(sub(a, b), c)
            return inner
        raise ParseError(f"expected a number, got {text!r}" if text else "expression ends too early")


def parse_expression(text: str, latex: bool = False) -> Node:
    """Parse a plain (or, with ``latex``, LaTeX) arithmetic expression into a :class:`Node` tree."""
    if len(text) > MAX_TEXT:
        raise ParseError(f"expression longer than {MAX_TEXT} characters")
    if latex:
        text = latex_to_plain(text)
    else:
        # "12 x 2" is a product; "3x - 9" is algebra (a variable), which this parser refuses
        text = _TIMES_X.sub("*", text)
    return _Parser(tokenize(text)).parse()


def _check(value: Fraction) -> Fraction:
    if len(str(abs(value.numerator))) > MAX_DIGITS or len(str(value.denominator)) > MAX_DIGITS:
        raise ParseError(f"value with more than {MAX_DIGITS} digits")
    return value


def apply(op: str, values: list[Fraction]) -> Fraction:
    """Apply one operation to exact values, within the limits (division by zero, huge powers: ParseError)."""
    if op == "add":
        return _check(sum(values, Fraction(0)))
    if op == "mul":
        result = Fraction(1)
        for v in values:
            result = _check(result * v)
        return result
    if op == "sub":
        return _check(values[0] - sum(values[1:], Fraction(0)))
    if op == "div":
        result = values[0]
        for v in values[1:]:
            if v == 0:
                raise ParseError("division by zero")
            result = _check(result / v)
        return result
    if op == "neg":
        return -values[0]
    if op == "percent":
        return _check(values[0] / 100)
    if op == "pow":
        base, exponent = values
        if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
            raise ParseError(f"exponent {exponent} outside the supported range")
        if base == 0 and exponent < 0:
            raise ParseError("division by zero")
        if abs(base.numerator) > 1 and math.log10(abs(base.numerator)) * abs(int(exponent)) > MAX_DIGITS:
            raise ParseError(f"power with more than {MAX_DIGITS} digits")
        return _check(base ** int(exponent))
    if op == "sqrt":
        value = values[0]
        if value < 0:
            raise ParseError("square root of a negative number")
        num, den = math.isqrt(value.numerator), math.isqrt(value.denominator)
        if num * num == value.numerator and den * den == value.denominator:
            return Fraction(num, den)
        raise ParseError("irrational square root")
    if op == "floor":
        return Fraction(math.floor(values[0]))
    if op == "round":
        digits = int(values[1]) if len(values) > 1 else 0
        if not 0 <= digits <= 12:
            raise ParseError(f"rounding to {digits} digits is outside the supported range")
        scale = Fraction(10) ** digits
        scaled = values[0] * scale
        return Fraction(math.floor(scaled + Fraction(1, 2))) / scale
    raise ParseError(f"unknown operation {op}")


def evaluate(node: Node) -> Fraction:
    """Exact value of a parsed expression."""
    if node.op == "num":
        return node.value
    return apply(node.op, [evaluate(a) for a in node.args])


def format_value(value: Fraction) -> str:
    """``24``, ``0.5``, ``1/3``: integers and finite decimals as decimals, other fractions as ``p/q``."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:
        text = f"{float(value):.12f}".rstrip("0").rstrip(".")
        if Fraction(text) == value:
            return text
    return f"{value.numerator}/{value.denominator}"
