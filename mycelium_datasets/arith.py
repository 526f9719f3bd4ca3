"""A small, safe arithmetic parser and exact evaluator for the equations a chain of thought writes.

Text from data or models is never executed: expressions are tokenized and parsed by recursive descent into a tree
of operations, and evaluated with :class:`fractions.Fraction` under size limits. Plain GSM8K arithmetic
(``16 - 3 - 4``, ``48/2``, ``$1,200``, ``20%``, ``x``/``×``/``*``/``÷``, ``^``, parentheses) and a subset of LaTeX
(``\\frac``/``\\dfrac``/``\\tfrac``, ``\\times``, ``\\cdot``, ``\\div``, ``^{...}``, ``\\sqrt[n]{...}``,
``\\binom``, ``!``, ``\\lfloor``/``\\lceil``, ``|...|``, ``\\left(``...``\\right)``, units in ``\\text{}``) are
understood, with letters the CoT assigned (``variables``) and, in :func:`solve_linear`, one unknown of a linear
equation; anything else is a :class:`ParseError` with a reason, never a crash or a hang.
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
    (r"\\(?:left|right)\s*[.]", ""),  # \left. ... \right| : an invisible delimiter
    (r"\\(?:left|right|[bB]igg?[lr]?)\s*(?=[()\[\]|]|\\[{}]|\\[lr](?:floor|ceil|vert))", ""),
    (r"\\[lr]vert", "|"),
    (r"\\\{", "("),
    (r"\\\}", ")"),
    (r"\\lfloor", "floor("),
    (r"\\lceil", "ceil("),
    (r"\\r(?:floor|ceil)", ")"),
    (r"\\(?:times|cdot|ast)(?![A-Za-z])", "*"),
    (r"\\div(?![A-Za-z])", "/"),
    (r"\^\s*(?:\\circ|\{\s*\\circ\s*\})", ""),  # degrees: 60^\circ is the number 60
    (r"\{,\}", ","),  # thousands separator 1{,}000
    (r"(?<=\d)(?:,\\!|\\[,!;:]|~)(?=\d{3}(?!\d))", lambda m: "," if "," in m.group(0) else ""),
    (r"\\!", ""),
    (r"\\[,;:> ]|\\quad|\\qquad|~|\\displaystyle|\\[dt]extstyle|\\limits", " "),
    (r"\\%", "%"),
    (r"\\\$", "$"),
    (r"\\[dt]?binom(?![A-Za-z])", r"\\binom"),
    (r"\\[dtc]frac(?![A-Za-z])", r"\\frac"),
]
# groups dropped whole: units and words (2(21\text{ inches})), invisible spacing
_LATEX_DROP = re.compile(
    r"\\(?:text|textnormal|textrm|textit|textbf|mbox|mathrm|hphantom|vphantom|phantom|hspace)\s*(?=\{)"
)
_CONNECTIVE = re.compile(r"\b(?:or|and|if|so|then|since|when|where|but|for|thus|hence|is|are)\b", re.IGNORECASE)
# commands whose argument is kept as a group: \boxed{42} is 42
_LATEX_KEEP = re.compile(r"\\(?:boxed|fbox|mathbf|mathit|bm|underline)\s*(?=\{)")


def latex_to_plain(text: str) -> str:
    """Rewrite the supported LaTeX into plain arithmetic (``\\frac{a}{b}`` -> ``((a)/(b))``, ...), linearly."""
    if len(text) > MAX_TEXT:
        raise ParseError(f"expression longer than {MAX_TEXT} characters")
    for pattern, repl in _LATEX_SIMPLE:
        text = re.sub(pattern, repl, text)
    return _latex_groups(text, 0)


def _latex_groups(text: str, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise ParseError(f"braces nested deeper than {MAX_DEPTH}")
    out, i = [], 0
    while i < len(text):
        m = _LATEX_DROP.match(text, i)
        if m:
            words, i = _braced(text, m.end())
            if _CONNECTIVE.search(words):  # "-4 \text{ or } x" is two statements, not a product
                raise ParseError(f"prose inside the expression: {words.strip()!r}")
            out.append(" ")
            continue
        m = _LATEX_KEEP.match(text, i)
        if m:
            i = m.end()
            continue
        m = re.match(r"\\frac\s*", text[i:])
        if m:
            i += m.end()
            num, i = _braced(text, i)
            den, i = _braced(text, i)
            out.append(f"(({_latex_groups(num, depth + 1)})/({_latex_groups(den, depth + 1)}))")
            continue
        m = re.match(r"\\binom\s*", text[i:])
        if m:
            i += m.end()
            n, i = _braced(text, i)
            k, i = _braced(text, i)
            out.append(f"binom(({_latex_groups(n, depth + 1)}),({_latex_groups(k, depth + 1)}))")
            continue
        m = re.match(r"\\sqrt\s*", text[i:])
        if m:
            i += m.end()
            index = None
            if text[i : i + 1] == "[":  # \sqrt[3]{27}
                close = text.find("]", i)
                if close < 0:
                    raise ParseError("unclosed root index")
                index, i = text[i + 1 : close], close + 1
            arg, i = _braced(text, i)
            if index is None:
                out.append(f"sqrt({_latex_groups(arg, depth + 1)})")
            else:
                out.append(f"root(({_latex_groups(arg, depth + 1)}),({_latex_groups(index, depth + 1)}))")
            continue
        if text[i] == "{":
            arg, i = _braced(text, i)
            out.append(f"({_latex_groups(arg, depth + 1)})")
            continue
        if text[i] == "\\":
            m = re.match(r"\\[A-Za-z]+", text[i:])
            raise ParseError(f"unsupported LaTeX command {m.group(0) if m else text[i : i + 2]!r}")
        out.append("(" if text[i] == "[" else ")" if text[i] == "]" else text[i])
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
    r"\s*(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)|(?P<op>\*\*|[-+*/×÷^%()|,]|!(?!=))"
    r"|(?P<func>sqrt|root|floor|ceil|abs|binom)(?=\s*\()|(?P<cur>[$€£]))"
)
# a variable: one letter, optionally with a subscript (a_1, r_(12) as LaTeX's r_{12} reads after rewriting)
_VARIABLE = re.compile(r"[A-Za-z](?:_(?:\d|[A-Za-z]|\(\w{1,4}\)))?")
FUNCTIONS = {"sqrt": 1, "floor": 1, "ceil": 1, "abs": 1, "root": 2, "binom": 2}
MAX_FACTORIAL = 40


_TIMES_X = re.compile(r"(?<=[\d)%])\s+x\s+(?=[$€£(]?\d)|(?<=\d)x(?=\d)")


def tokenize(text: str, variables: dict | None = None) -> list[tuple[str, str, int, int]]:
    """``(kind, text, start, end)`` tokens of a plain arithmetic expression; anything else is a ParseError.
    With ``variables`` (name -> value), a letter that names one of them is a ``var`` token."""
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if (not m or m.end() == i) and variables:
            v = _VARIABLE.match(text, i)
            if v and v.group(0) in variables:
                tokens.append(("var", v.group(0), v.start(), v.end()))
                i = v.end()
                continue
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

    def __init__(self, tokens, variables=None):
        self.tokens, self.i, self.depth, self.variables = tokens, 0, 0, variables or {}

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
        while self.peek()[1] in ("*", "/", "×", "÷", "(") or self.peek()[0] in ("func", "var"):
            if self.peek()[1] == "(" or self.peek()[0] in ("func", "var"):  # implicit product: 2(62+18), 3\sqrt{2}
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
        while self.peek()[1] in ("%", "!"):
            _, symbol, _, end = self.take()
            if symbol == "!":  # 5! is a factorial
                node = Node("factorial", args=[node], span=(node.span[0], end))
            elif node.op == "num":  # "20%" is the number 0.2, written in percent
                node = Node("num", value=node.value / 100, span=(node.span[0], end))
            else:
                node = Node("percent", args=[node], span=(node.span[0], end))
        return node

    def _group(self, close: str) -> Node:
        self._nest()
        inner = self.expr()
        self.depth -= 1
        token = self.take()
        if token[1] != close:
            raise ParseError("unclosed parenthesis" if close == ")" else f"unclosed {close!r}")
        return inner

    def atom(self) -> Node:
        kind, text, start, end = self.take()
        if kind == "num":
            value = Fraction(text.replace(",", ""))
            if "." in text and len(text.split(".")[1]) >= 10:
                # a float printed in full (22.000000000000004, 0.6666666666666666) means the simple fraction
                value = value.limit_denominator(1000)
            return Node("num", value=value, span=(start, end))
        if kind == "var":  # a variable the CoT assigned earlier (x = 5): its value; None marks the unknown
            if self.variables[text] is None:
                return Node("unknown", span=(start, end))
            return Node("num", value=self.variables[text], span=(start, end))
        if kind == "func":
            if self.take()[1] != "(":
                raise ParseError(f"{text} needs parentheses")
            args = []
            for k in range(FUNCTIONS[text]):
                args.append(self._group(")" if k == FUNCTIONS[text] - 1 else ","))
            return Node(text, args=args, span=(start, self.tokens[self.i - 1][3]))
        if text == "|":
            inner = self._group("|")
            return Node("abs", args=[inner], span=(start, self.tokens[self.i - 1][3]))
        if text == "(":
            inner = self._group(")")
            close = self.tokens[self.i - 1]
            inner.span = (start, close[3]) if inner.op != "num" else inner.span
            inner.closed = True  # (a - b) - c keeps its parentheses: sub(sub(a, b), c)
            return inner
        raise ParseError(f"expected a number, got {text!r}" if text else "expression ends too early")


def parse_expression(text: str, latex: bool = False, variables: dict | None = None) -> Node:
    """Parse a plain (or, with ``latex``, LaTeX) arithmetic expression into a :class:`Node` tree. ``variables``
    (name -> value, LaTeX only) are letters the CoT assigned earlier; any other letter is a ParseError."""
    if len(text) > MAX_TEXT:
        raise ParseError(f"expression longer than {MAX_TEXT} characters")
    if latex:
        text = latex_to_plain(text)
    else:
        # "12 x 2" is a product; "3x - 9" is algebra (a variable), which this parser refuses
        text = _TIMES_X.sub("*", text)
        variables = None
    return _Parser(tokenize(text, variables), variables).parse()


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
        if exponent.denominator != 1:  # 8^(2/3): an exact root, then the power
            if exponent.denominator > MAX_EXPONENT:
                raise ParseError(f"exponent {exponent} outside the supported range")
            base = _root(base, exponent.denominator)
            exponent = Fraction(exponent.numerator)
        if base == 0 and exponent < 0:
            raise ParseError("division by zero")
        if abs(base) in (0, 1):  # (-1)^611, 1^100, 0^9: no growth
            return base ** int(exponent % 2 + 2 if base == -1 else abs(exponent)) if exponent else Fraction(1)
        if abs(exponent) > MAX_EXPONENT:
            raise ParseError(f"exponent {exponent} outside the supported range")
        big = max(abs(base.numerator), base.denominator)
        if big > 1 and math.log10(big) * abs(int(exponent)) > MAX_DIGITS:
            raise ParseError(f"power with more than {MAX_DIGITS} digits")
        return _check(base ** int(exponent))
    if op == "sqrt":
        return _root(values[0], 2)
    if op == "root":
        radicand, index = values
        if index.denominator != 1 or not 2 <= index <= MAX_EXPONENT:
            raise ParseError(f"root index {index} outside the supported range")
        return _root(radicand, int(index))
    if op == "factorial":
        n = values[0]
        if n.denominator != 1 or not 0 <= n <= MAX_FACTORIAL:
            raise ParseError(f"factorial of {n} outside the supported range (0..{MAX_FACTORIAL})")
        return _check(Fraction(math.factorial(int(n))))
    if op == "binom":
        n, k = values
        if n.denominator != 1 or k.denominator != 1 or not 0 <= n <= 10_000:
            raise ParseError(f"binomial coefficient ({n} choose {k}) outside the supported range")
        return _check(Fraction(math.comb(int(n), int(k)) if 0 <= k <= n else 0))
    if op == "abs":
        return abs(values[0])
    if op == "solve":  # the unknown u of a*u + b = c*u + d
        a, b, c, d = values
        if a == c:
            raise ParseError("the unknown cancels: no single solution")
        return _check((d - b) / (a - c))
    if op == "ceil":
        return Fraction(math.ceil(values[0]))
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


def _root(value: Fraction, n: int) -> Fraction:
    """The exact ``n``-th root of ``value``; an irrational one is a ParseError (no floats in the DAG)."""
    if value < 0 and n % 2 == 0:
        raise ParseError("even root of a negative number")
    sign = -1 if value < 0 else 1
    roots = []
    for part in (abs(value.numerator), value.denominator):
        r = _integer_root(part, n)
        if r is None:
            raise ParseError("irrational root" if n > 2 else "irrational square root")
        roots.append(r)
    return Fraction(sign * roots[0], roots[1])


def _integer_root(x: int, n: int) -> int | None:
    if n == 2:
        r = math.isqrt(x)
    else:
        r = round(x ** (1 / n)) if x < 2**1000 else None
        if r is None:
            return None
        for c in (r - 1, r, r + 1):
            if c >= 0 and c**n == x:
                return c
        return None
    return r if r * r == x else None


def unknowns(text: str, variables: dict | None = None) -> set[str]:
    """The letters of a LaTeX expression that are not assigned variables (function names aside)."""
    plain = re.sub(r"(?:sqrt|root|floor|ceil|abs|binom)(?=\s*\()", " ", latex_to_plain(text))
    return {v for v in _VARIABLE.findall(plain) if v not in (variables or {})}


def linear_form(node: Node) -> tuple[Fraction, Fraction]:
    """``(a, b)`` with ``node == a * u + b`` for the one unknown ``u``; anything not linear in it is a ParseError."""
    if node.op == "num":
        return Fraction(0), node.value
    if node.op == "unknown":
        return Fraction(1), Fraction(0)
    forms = [linear_form(arg) for arg in node.args]
    if node.op in ("add", "sub"):
        sign = [1] + [1 if node.op == "add" else -1] * (len(forms) - 1)
        return (
            _check(sum((s * a for s, (a, _) in zip(sign, forms)), Fraction(0))),
            _check(sum((s * b for s, (_, b) in zip(sign, forms)), Fraction(0))),
        )
    if node.op == "neg":
        return -forms[0][0], -forms[0][1]
    if node.op == "mul":
        a, b = forms[0]
        for c, d in forms[1:]:
            if a and c:
                raise ParseError("not linear in the unknown")
            a, b = _check(a * d + b * c), _check(b * d)
        return a, b
    if node.op == "div":
        a, b = forms[0]
        for c, d in forms[1:]:
            if c:
                raise ParseError("not linear in the unknown")
            if d == 0:
                raise ParseError("division by zero")
            a, b = _check(a / d), _check(b / d)
        return a, b
    if any(a for a, _ in forms):
        raise ParseError(f"{node.op} of the unknown is not linear")
    return Fraction(0), apply(node.op, [b for _, b in forms])


def solve_linear(left: str, right: str, variables: dict | None = None) -> tuple[str, list[Fraction], Fraction]:
    """Solve ``left = right`` (LaTeX) for its one unknown letter when both sides are linear in it:
    ``(name, [a, b, c, d], value)`` for ``a*u + b = c*u + d``; anything else is a ParseError."""
    names = unknowns(left, variables) | unknowns(right, variables)
    if len(names) != 1:
        raise ParseError(f"{len(names)} unknowns, not one")
    (name,) = names
    scope = {**(variables or {}), name: None}
    (a, b), (c, d) = (linear_form(parse_expression(side, latex=True, variables=scope)) for side in (left, right))
    return name, [a, b, c, d], apply("solve", [a, b, c, d])


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
