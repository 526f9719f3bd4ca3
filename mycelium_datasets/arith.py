"""A small, safe arithmetic parser and exact evaluator for the equations a chain of thought writes.

Text from data or models is never executed: expressions are tokenized and parsed by recursive descent into a tree
of operations, and evaluated with :class:`fractions.Fraction` under size limits. Plain GSM8K arithmetic
(``16 - 3 - 4``, ``48/2``, ``$1,200``, ``20%``, ``x``/``×``/``*``/``÷``, ``^``, parentheses) and a subset of LaTeX
(``\\frac``/``\\dfrac``/``\\tfrac``, ``\\times``, ``\\cdot``, ``\\div``, ``^{...}``, ``\\sqrt[n]{...}``,
``\\binom``, ``!``, ``\\lfloor``/``\\lceil``, ``|...|``, ``\\left(``...``\\right)``, units in ``\\text{}``) are
understood, with letters the CoT assigned (``variables``) and, in :func:`solve_linear`, one unknown of a linear
equation, and in :func:`solve_polynomial` one unknown of a polynomial equation; anything else is a
:class:`ParseError` with a reason, never a crash or a hang.

**Values** are exact: a :class:`fractions.Fraction` (the fast path: every GSM8K value), or, only when a value is not
rational (``\\sqrt{2}``, ``\\pi``, ``2^{1/3}``), a sympy number built from *this* parse tree with ``sympy.Rational``,
``sympy.sqrt``, ``sympy.pi``, ... (never ``sympify``/``parse_expr`` on text), kept under the same limits: at most
:data:`MAX_SYMBOLIC_NODES` nodes, :data:`MAX_DIGITS` digits per integer in it, small expansions of sums. A symbolic
value that turns out rational (``\\sqrt{2}^2``) goes back to a Fraction. :func:`format_value` writes it as
LaTeX (``3 \\sqrt{13}``, ``288 \\pi``) that math-verify and :func:`parse_value` read back.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

MAX_TEXT = 2_000  # characters of one expression
MAX_DEPTH = 60  # nesting of parentheses / braces
MAX_DIGITS = 60  # digits of any intermediate value (numerator or denominator)
MAX_EXPONENT = 64
MAX_SYMBOLIC_NODES = 160  # nodes of a symbolic (irrational) value's expression tree
MAX_SUM_EXPONENT = 12  # (a + b\sqrt{c})^n is expanded: n is kept small,
MAX_EXPANDED_TERMS = 500  # and so is the number of terms its expansion writes before collecting them
MAX_DEGREE = 4  # of a polynomial equation in one unknown


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


# Greek letters a CoT uses as unknowns (\\alpha = 145^\\circ), each read as one letter
GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "theta": "θ", "phi": "φ", "lambda": "λ", "mu": "μ"}

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
    (r"\{([^{}]*)\\choose(?![A-Za-z])([^{}]*)\}", r"\\binom{\1}{\2}"),  # {8 \choose 2}
    (r"\\[dtc]frac(?![A-Za-z])", r"\\frac"),
    (r"\\pi(?![A-Za-z])", " π "),  # the one named constant: a token of its own, never a variable
    (rf"\\({'|'.join(GREEK)})(?![A-Za-z])", lambda m: GREEK[m.group(1)]),  # \\alpha: a variable like a
]
# groups dropped whole: units and words (2(21\text{ inches})), invisible spacing
_LATEX_DROP = re.compile(
    r"\\(?:text|textnormal|textrm|textit|textbf|mbox|mathrm|hphantom|vphantom|phantom|hspace)\s*(?=\{)"
)
_CONNECTIVE = re.compile(r"\b(?:or|and|if|so|then|since|when|where|but|for|thus|hence|is|are)\b", re.IGNORECASE)
# commands whose argument is kept as a group: \boxed{42} is 42
_LATEX_KEEP = re.compile(r"\\(?:boxed|fbox|mathbf|mathit|bm|underline)\s*(?=\{)")


@functools.lru_cache(maxsize=4096)  # a statement's parts are rewritten several times (unknowns, then each parse)
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
    r"|(?P<func>sqrt|root|floor|ceil|abs|binom)(?=\s*\()|(?P<const>π)|(?P<cur>[$€£]))"
)
# a variable: one letter, optionally with a subscript (a_1, r_(12) as LaTeX's r_{12} reads after rewriting)
_VARIABLE = re.compile(r"[A-Za-zα-μ](?:_(?:\d|[A-Za-z]|\(\w{1,4}\)))?")
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
        while self.peek()[1] in ("*", "/", "×", "÷", "(") or self.peek()[0] in ("func", "var", "const"):
            if self.peek()[1] == "(" or self.peek()[0] in ("func", "var", "const"):  # 2(62+18), 3\sqrt{2}, 2\pi
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
        if kind == "const":
            return Node("num", value=_sympy().pi, span=(start, end))
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


def _sympy():
    """sympy, imported on first use: a trace whose values are all rational never pays for it."""
    import sympy

    return sympy


def is_rational(value) -> bool:
    return isinstance(value, Fraction)


def to_sympy(value):
    """A value as a sympy number (a Fraction becomes ``sympy.Rational``: built from two integers, not from text)."""
    if isinstance(value, Fraction):
        return _sympy().Rational(value.numerator, value.denominator)
    return value


def _symbolic(value):
    """A sympy result back under the limits: a rational one becomes a Fraction; non-real, infinite or too large
    (nodes, digits) is a ParseError."""
    sp = _sympy()
    if value.is_Rational:
        return _check(Fraction(int(value.p), int(value.q)))
    if not value.is_number or value.has(sp.I, sp.zoo, sp.oo, sp.nan, sp.AccumBounds):
        raise ParseError("not a finite real number")
    nodes = 0
    for node in sp.preorder_traversal(value):
        nodes += 1
        if nodes > MAX_SYMBOLIC_NODES:
            raise ParseError(f"symbolic value with more than {MAX_SYMBOLIC_NODES} nodes")
        if node.is_Rational and (len(str(abs(node.p))) > MAX_DIGITS or len(str(node.q)) > MAX_DIGITS):
            raise ParseError(f"value with more than {MAX_DIGITS} digits")
    return value


def values_equal(a, b) -> bool:
    """Exact equality of two values (symbolic ones compared by their expanded difference)."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    if isinstance(a, Fraction) != isinstance(b, Fraction):
        return False  # a Fraction is rational, a symbolic value never is (see _symbolic)
    sp = _sympy()
    return a == b or sp.expand(sp.radsimp(a - b)) == 0


def _is_zero(value) -> bool:
    return value == 0 if isinstance(value, Fraction) else values_equal(value, Fraction(0))


def _sign(value) -> int:
    """-1, 0 or 1 (a symbolic value is decided numerically with 30 digits: it is never exactly 0, see _symbolic)."""
    if isinstance(value, Fraction):
        return (value > 0) - (value < 0)
    return 1 if _sympy().N(value, 30) > 0 else -1


def apply(op: str, values: list):
    """Apply one operation to exact values, within the limits (division by zero, huge powers: ParseError).
    Fractions in, Fractions out where the result is rational; an irrational result is a sympy number."""
    if not all(isinstance(v, Fraction) for v in values):
        return _apply_symbolic(op, values)
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
            if not isinstance(base, Fraction):  # 2^(2/3): an irrational root
                return _apply_symbolic("pow", [base, exponent])
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
    if op == "poly_root":
        return _poly_root(values)
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


def _apply_symbolic(op: str, values: list):
    """:func:`apply` when an operand is irrational: the same operations on sympy numbers, expanded (and a radical
    denominator rationalized) so that equal values compare equal, then checked by :func:`_symbolic`."""
    sp = _sympy()
    xs = [to_sympy(v) for v in values]
    if op == "add":
        result = sp.Add(*xs)
    elif op == "mul":
        terms = math.prod(len(x.args) if x.is_Add else 1 for x in xs)
        if terms > MAX_EXPANDED_TERMS:
            raise ParseError(f"product with more than {MAX_EXPANDED_TERMS} terms to expand")
        result = sp.Mul(*xs)
    elif op == "sub":
        result = xs[0] - sp.Add(*xs[1:])
    elif op == "div":
        result = xs[0]
        for x in xs[1:]:
            if _is_zero(x if x.is_Rational else _symbolic(x)):
                raise ParseError("division by zero")
            result = sp.radsimp(result / x)
    elif op == "neg":
        result = -xs[0]
    elif op == "percent":
        result = xs[0] / 100
    elif op == "pow":
        base, exponent = xs
        if not exponent.is_Rational or abs(exponent.p) > MAX_EXPONENT or exponent.q > MAX_EXPONENT:
            raise ParseError(f"exponent {exponent} outside the supported range")
        if base.is_Add and abs(exponent.p) > MAX_SUM_EXPONENT:
            raise ParseError(f"power of a sum with exponent above {MAX_SUM_EXPONENT}")
        if base.is_Add and math.comb(len(base.args) + abs(exponent.p) - 1, abs(exponent.p)) > MAX_EXPANDED_TERMS:
            raise ParseError(f"power of a sum with more than {MAX_EXPANDED_TERMS} terms to expand")
        if exponent.q % 2 == 0 and _sign(values[0]) < 0:  # (1 - \sqrt{2})^{1/2} is not real either
            raise ParseError("even root of a negative number")
        if base.is_Rational and base == 0 and exponent < 0:
            raise ParseError("division by zero")
        result = base**exponent
        if exponent < 0:
            result = sp.radsimp(result)
    elif op in ("sqrt", "root"):
        index = 2 if op == "sqrt" else xs[1]
        if op == "root" and (not index.is_Integer or not 2 <= index <= MAX_EXPONENT):
            raise ParseError(f"root index {index} outside the supported range")
        sign = _sign(values[0]) if values[0] != 0 else 0
        if sign < 0 and index % 2 == 0:
            raise ParseError("even root of a negative number")
        result = sign * sp.root(abs(xs[0]), index)
    elif op == "abs":
        result = xs[0] * _sign(values[0])
    elif op in ("floor", "ceil"):
        result = (sp.floor if op == "floor" else sp.ceiling)(xs[0])
    elif op == "round":
        digits = int(values[1]) if len(values) > 1 else 0
        if not 0 <= digits <= 12:
            raise ParseError(f"rounding to {digits} digits is outside the supported range")
        result = sp.floor(xs[0] * 10**digits + sp.Rational(1, 2)) / 10**digits
    elif op == "solve":
        a, b, c, d = values
        if values_equal(a, c):
            raise ParseError("the unknown cancels: no single solution")
        result = sp.radsimp((xs[3] - xs[1]) / (xs[0] - xs[2]))
    elif op == "poly_root":
        return _poly_root(values)
    else:
        raise ParseError(f"{op} of an irrational number is not supported")
    return _symbolic(sp.expand(result))


def _root(value: Fraction, n: int):
    """The exact ``n``-th root of ``value``: a Fraction when it is rational, else a sympy number."""
    if value < 0 and n % 2 == 0:
        raise ParseError("even root of a negative number")
    sign = -1 if value < 0 else 1
    roots = []
    for part in (abs(value.numerator), value.denominator):
        r = _integer_root(part, n)
        if r is None:
            sp = _sympy()
            return _symbolic(sp.expand(sign * sp.root(to_sympy(abs(value)), n)))
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


def variable_name(text: str) -> str:
    """The name a LaTeX variable has in expressions: ``a_{12}`` -> ``a_12``, ``\\alpha`` -> ``α``."""
    text = re.sub(r"[{}\s]", "", text)
    return GREEK.get(text[1:], text) if text.startswith("\\") else text


def polynomial_form(node: Node) -> list:
    """Coefficients ``[c0, c1, ...]`` with ``node == sum(c_k * u**k)`` for the one unknown ``u`` (degree at most
    :data:`MAX_DEGREE`); anything that is not a polynomial in it (``1/u``, ``\\sqrt{u}``) is a ParseError."""
    if node.op == "num":
        return [node.value]
    if node.op == "unknown":
        return [Fraction(0), Fraction(1)]
    forms = [polynomial_form(arg) for arg in node.args]
    if node.op in ("add", "sub"):
        result = list(forms[0])
        for form in forms[1:]:
            result = _poly_add(result, form, node.op)
        return _trim(result)
    if node.op == "neg":
        return [apply("neg", [c]) for c in forms[0]]
    if node.op == "mul":
        result = forms[0]
        for form in forms[1:]:
            result = _poly_mul(result, form)
        return result
    if node.op == "div":
        result = forms[0]
        for form in forms[1:]:
            if len(form) > 1:
                raise ParseError("division by the unknown: not a polynomial")
            result = [apply("div", [c, form[0]]) for c in result]
        return result
    if node.op == "pow" and len(forms[0]) > 1:
        (exponent,) = forms[1] if len(forms[1]) == 1 else (None,)
        if not isinstance(exponent, Fraction) or exponent.denominator != 1 or not 0 <= exponent <= MAX_DEGREE:
            raise ParseError("a power of the unknown that is not a small whole number")
        result = [Fraction(1)]
        for _ in range(int(exponent)):
            result = _poly_mul(result, forms[0])
        return result
    if any(len(form) > 1 for form in forms):
        raise ParseError(f"{node.op} of the unknown is not a polynomial")
    return [apply(node.op, [form[0] for form in forms])]


def _trim(form: list) -> list:
    while len(form) > 1 and _is_zero(form[-1]):
        form.pop()
    return form


def _poly_add(a: list, b: list, op: str = "add") -> list:
    n = max(len(a), len(b))
    a, b = a + [Fraction(0)] * (n - len(a)), b + [Fraction(0)] * (n - len(b))
    return [apply(op, [x, y]) for x, y in zip(a, b)]


def _poly_mul(a: list, b: list) -> list:
    if len(a) + len(b) - 2 > MAX_DEGREE:
        raise ParseError(f"polynomial of degree above {MAX_DEGREE}")
    result = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            result[i + j] = apply("add", [result[i + j], apply("mul", [x, y])])
    return _trim(result)


def linear_form(node: Node) -> tuple:
    """``(a, b)`` with ``node == a * u + b`` for the one unknown ``u``; anything not linear in it is a ParseError."""
    form = polynomial_form(node)
    if len(form) > 2:
        raise ParseError("not linear in the unknown")
    return (form[1] if len(form) > 1 else Fraction(0)), form[0]


def _sides(left: str, right: str, variables: dict | None) -> tuple[str, Node, Node]:
    names = unknowns(left, variables) | unknowns(right, variables)
    if len(names) != 1:
        raise ParseError(f"{len(names)} unknowns, not one")
    (name,) = names
    scope = {**(variables or {}), name: None}
    sides = (parse_expression(side, latex=True, variables=scope) for side in (left, right))
    return name, *sides


def solve_equation(left: str, right: str, variables: dict | None = None) -> tuple[str, str, list, list]:
    """Solve ``left = right`` (LaTeX) for its one unknown letter, both sides parsed once: ``("solve", name,
    [a, b, c, d], [value])`` when both sides are linear (``a*u + b = c*u + d``), else ``("poly_root", name,
    coefficients, roots)`` for a polynomial equation of degree 2 to :data:`MAX_DEGREE`, coefficients of
    ``left - right`` from the highest degree down, its distinct real roots ascending. Anything else is a ParseError."""
    name, left_node, right_node = _sides(left, right, variables)
    left_form, right_form = polynomial_form(left_node), polynomial_form(right_node)
    if len(left_form) <= 2 and len(right_form) <= 2:
        (b, a), (d, c) = ([*form, Fraction(0)][:2] for form in (left_form, right_form))
        return "solve", name, [a, b, c, d], [apply("solve", [a, b, c, d])]
    form = _trim(_poly_add(left_form, right_form, "sub"))
    if len(form) < 3:
        raise ParseError("not a polynomial equation of degree 2 or more")
    return "poly_root", name, form[::-1], polynomial_roots(form[::-1])


def solve_linear(left: str, right: str, variables: dict | None = None) -> tuple[str, list, object]:
    """Solve ``left = right`` (LaTeX) for its one unknown letter when both sides are linear in it:
    ``(name, [a, b, c, d], value)`` for ``a*u + b = c*u + d``; anything else is a ParseError."""
    op, name, coefficients, roots = solve_equation(left, right, variables)
    if op != "solve":
        raise ParseError("not linear in the unknown")
    return name, coefficients, roots[0]


def solve_polynomial(left: str, right: str, variables: dict | None = None) -> tuple[str, list, list]:
    """Solve ``left = right`` (LaTeX), a polynomial equation of degree 2 to :data:`MAX_DEGREE` in one unknown letter:
    ``(name, coefficients, roots)`` (see :func:`solve_equation`; ``poly_root`` with index ``k`` gives ``roots[k]``)."""
    op, name, coefficients, roots = solve_equation(left, right, variables)
    if op != "poly_root":
        raise ParseError("not a polynomial equation of degree 2 or more")
    return name, coefficients, roots


def polynomial_roots(coefficients: list) -> list:
    """Distinct real roots, ascending, of the polynomial with ``coefficients`` (highest degree first): the quadratic
    formula for degree 2 (exact, radicals allowed), rational roots only for degrees 3 and 4."""
    form = _trim(list(coefficients[::-1]))
    degree = len(form) - 1
    if degree < 1:
        raise ParseError("no unknown left in the equation")
    if degree > MAX_DEGREE:
        raise ParseError(f"polynomial of degree above {MAX_DEGREE}")
    if degree == 1:
        roots = [apply("div", [apply("neg", [form[0]]), form[1]])]
    elif degree == 2:
        c, b, a = form
        discriminant = apply("sub", [apply("mul", [b, b]), apply("mul", [Fraction(4), a, c])])
        if _sign(discriminant) < 0:
            raise ParseError("no real root")
        root = apply("sqrt", [discriminant])
        twice_a = apply("mul", [Fraction(2), a])
        roots = [apply("div", [apply(op, [apply("neg", [b]), root]), twice_a]) for op in ("sub", "add")]
    else:
        form = [apply("div", [c, form[-1]]) for c in form]  # monic: (4/3)\\pi r^3 - 4\\pi r^2 has rational roots
        if not all(isinstance(c, Fraction) for c in form):
            raise ParseError("a cubic or quartic with irrational coefficients")
        sp = _sympy()
        poly = sp.Poly([to_sympy(c) for c in form[::-1]], sp.Symbol("u"), domain="QQ")
        roots = [_check(Fraction(int(r.p), int(r.q))) for r in poly.ground_roots()]
        if not roots:
            raise ParseError("no rational root")
    unique: list = []
    for r in sorted(roots, key=lambda v: float(v) if isinstance(v, Fraction) else float(_sympy().N(v, 30))):
        if not any(values_equal(r, u) for u in unique):
            unique.append(r)
    return unique


def _poly_root(values: list):
    """``poly_root(c_n, ..., c_0, k)``: the ``k``-th distinct real root (ascending) of the polynomial."""
    *coefficients, k = values
    if not isinstance(k, Fraction) or k.denominator != 1:
        raise ParseError(f"root index {k} is not a whole number")
    roots = polynomial_roots(coefficients)
    if not 0 <= k < len(roots):
        raise ParseError(f"root {k} of a polynomial with {len(roots)} real roots")
    return roots[int(k)]


def evaluate(node: Node):
    """Exact value of a parsed expression (a Fraction, or a sympy number when it is irrational)."""
    if node.op == "num":
        return node.value
    return apply(node.op, [evaluate(a) for a in node.args])


def format_value(value) -> str:
    """``24``, ``0.5``, ``1/3``: integers and finite decimals as decimals, other fractions as ``p/q``; an irrational
    value as LaTeX (``3 \\sqrt{13}``, ``\\frac{\\pi}{2}``), which :func:`parse_value` and math-verify read back."""
    if not isinstance(value, Fraction):
        return _sympy().latex(value)
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


def parse_value(text: str):
    """The value :func:`format_value` wrote: a Fraction from ``24``/``0.5``/``1/3``, else our LaTeX parser."""
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return evaluate(parse_expression(text, latex=True))
