"""The ``op_pairs`` artifact: each problem's operations, parsed from its CoT, linked to the problem, and executed.

**Parser, tier 1** (this module): every equation a span writes, plain arithmetic as GSM8K writes it
(``16 - 3 - 4 = 9``, ``48/2 = 24``, ``$1,200 * 20% = $240``, ``12 x 2``, chained ``a = b = c``) or LaTeX math
(``$\\frac{3}{4} \\cdot 8 = 6$``), is parsed by :mod:`mycelium_datasets.arith` (a recursive-descent parser: no
``eval``, no ``sympify``) into operations, nested expressions giving several (``0.5 * 258 + 24`` is ``mul`` then
``add``); LaTeX traces are read whole (display blocks, chains, ``x = ...`` assignments substituted later).
**Tier 2**: a linear equation in one unknown (``3x - 5 = 4``) is solved exactly into one ``solve`` op.
**Tier 3** (the operation classifier, once the students exist) is a fallback for steps the parsers miss; every op
records ``parse_tier``.

**Provenance**: each operand is an earlier operation's result (``source: op``, ``op_index``), a number written in the
problem (``source: problem``, character offsets; digits, ``1,200``, ``80%``, and number words such as *half*,
*twice*, *a dozen*, *three*), or an implicit constant (``source: constant``, e.g. 60 minutes in an hour).

**Execution is the verifier**: the DAG is executed with exact fractions from the operands' provenance;
``validated`` iff the last operation's value equals the gold answer. Every problem keeps a row, with ``op_status``
(``validated``, ``wrong_answer``, ``unverified`` (the check gave no verdict: a timeout, a gold too long to read),
``no_ops``, ``no_spans``, ``no_gold``, ``execution_error``) and a reason.

Input columns: ``id``, ``problem``, ``answer``, ``spans``, ``span_regions`` (``clause_regions``).
Output columns: ``clause_regions``'s plus ``ops`` (``op``, ``operands``, ``result``, ``written_result``, ``expr``,
``span_index``, ``span_text``, ``region``, ``parse_tier``), ``executed_answer``, ``validated``, ``op_status``,
``op_status_reason``, ``n_parse_errors``.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import datasets

from . import clause_regions as clause_regions_mod
from .answers import ZERO_WIDTH, answers_match
from .arith import MAX_DIGITS, Node, ParseError, apply, evaluate, format_value, parse_expression, solve_linear

VERSION = "1.0.0"
INPUT_COLUMNS = ("id", "problem", "answer", "spans", "span_regions")
OP_NAMES = (
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "sqrt",
    "neg",
    "percent",
    "floor",
    "round",
    "root",
    "factorial",
    "binom",
    "abs",
    "ceil",
    "solve",
)

OPERAND = {
    "value": datasets.Value("string"),
    "source": datasets.Value("string"),
    "char_start": datasets.Value("int32"),
    "char_end": datasets.Value("int32"),
    "op_index": datasets.Value("int32"),
}
OP = {
    "op": datasets.Value("string"),
    "operands": datasets.List(OPERAND),
    "result": datasets.Value("string"),
    "written_result": datasets.Value("string"),
    "expr": datasets.Value("string"),
    "span_index": datasets.Value("int32"),
    "span_text": datasets.Value("string"),
    "region": clause_regions_mod.REGION,
    "parse_tier": datasets.Value("int32"),
}
FEATURES = datasets.Features(
    {
        **clause_regions_mod.FEATURES,
        "ops": datasets.List(OP),
        "executed_answer": datasets.Value("string"),
        "validated": datasets.Value("bool"),
        "op_status": datasets.Value("string"),
        "op_status_reason": datasets.Value("string"),
        "n_parse_errors": datasets.Value("int32"),
    }
)


@dataclass
class OpPairsConfig:
    """Configuration of the ``op_pairs`` artifact.

    Args:
        op_verify_timeout (`float`, *optional*, defaults to 5.0): seconds per comparison with the gold answer.
        op_spacy_pipeline (`str`, *optional*): spaCy pipeline for operand clauses (default: ``en_core_web_sm``).
    """

    op_verify_timeout: float = field(default=5.0, metadata={"help": "Seconds per gold-answer comparison (ops)."})
    op_spacy_pipeline: str | None = field(default=None, metadata={"help": "spaCy pipeline for operand clauses."})


# ---------------------------------------------------------------------------------------------------------------
# Numbers in the problem text
# ---------------------------------------------------------------------------------------------------------------

NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "half": Fraction(1, 2),
    "halves": Fraction(1, 2),
    "twice": 2,
    "double": 2,
    "doubles": 2,
    "triple": 3,
    "thrice": 3,
    "dozen": 12,
    "dozens": 12,
    "quarter": Fraction(1, 4),
    "quarters": Fraction(1, 4),
    "third": Fraction(1, 3),
    "thirds": Fraction(1, 3),
    "once": 1,
    "pair": 2,
    "pairs": 2,
}
_DIGITS = rf"\d(?:[{ZERO_WIDTH}]*\d)*"  # a zero-width character inside a number does not split it
_PROBLEM_NUMBER = re.compile(
    rf"(?<![\w.])\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|(?<![\w.]){_DIGITS}(?:\.{_DIGITS})?|(?<![\w.])\.{_DIGITS}"
)
_WORD = re.compile(r"[A-Za-z]+")


def problem_numbers(problem: str) -> list[tuple[Fraction, int, int]]:
    """Every number the problem states: digits (``1,200``, ``3.5``; ``80%`` also as ``0.8``) and number words."""
    found = []
    for m in _PROBLEM_NUMBER.finditer(problem):
        digits = re.sub(f"[,{ZERO_WIDTH}]", "", m.group(0))
        if len(digits) > MAX_DIGITS:  # no operation can use it (and int() refuses 4,300+ digits): not a number
            continue
        value = Fraction(digits)
        found.append((value, m.start(), m.end()))
        if problem[m.end() : m.end() + 1] == "%" or problem[m.end() : m.end() + 8].lower().startswith(" percent"):
            found.append((value / 100, m.start(), m.end()))
    for m in _WORD.finditer(problem):
        word = m.group(0).lower()
        if word in NUMBER_WORDS:
            found.append((Fraction(NUMBER_WORDS[word]), m.start(), m.end()))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Equations in CoT text
# ---------------------------------------------------------------------------------------------------------------

_LATEX_MATH = re.compile(
    r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\\d])\$([^$]*?\\[^$]*?|[^$]*?=[^$]*?)\$", re.DOTALL
)
_ARITH_CHARS = re.compile(r"[\d\s.,+\-−*/×÷^%()$€£x]")
_UNIT_IN_EQUATION = re.compile(
    r"(?<=[\d%])(?:\s*/\s*(?!x\b)[A-Za-z]+|\s+(?!x\b)[A-Za-z']+){1,6}(?=\s*(?:[-+*/×÷=]|x\s))"
)
_BULLET = re.compile(r"(?m)^[ \t]*(?:[-*•]|\d+[.)])[ \t]+")
_RESULT = re.compile(r"\s*[$€£]?\s*(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?)\s*(%?)")


def _left_expression(text: str, end: int) -> tuple[str, int]:
    """The arithmetic run that ends at ``text[end]`` (an ``=``), scanning left; ``x`` only between numbers."""
    i = end
    while i > 0 and _ARITH_CHARS.match(text[i - 1]):
        if text[i - 1] == "x" and (i - 2 < 0 or not (text[i - 2].isspace() or text[i - 2].isdigit())):
            break
        i -= 1
    run = text[i:end]
    # drop a leading word-fragment of punctuation / an unmatched ")" or a trailing list comma
    stripped = run.lstrip(" ,.)")
    return stripped.strip(), end - len(run) + (len(run) - len(stripped))


_EQUATION_WORD = re.compile(
    r"\b(half|twice|double|triple|dozen|quarter|third|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
    r"(?=\s*[*×x/+=-]\s*[$€£(]?\d)|(?<=[*×/+-])(\s*)(half|twice|double|dozen|quarter|third)\b",
    re.IGNORECASE,
)


def _number_words_in_equations(text: str) -> str:
    """Number words used as operands ("half * 188 = 94") become digits; elsewhere they stay words."""

    def digits(word: str) -> str:
        value = Fraction(NUMBER_WORDS[word.lower()])
        return str(value.numerator) if value.denominator == 1 else f"({value.numerator}/{value.denominator})"

    def replace(m: re.Match) -> str:
        if m.group(1):
            return digits(m.group(1))
        return m.group(2) + digits(m.group(3))

    return _EQUATION_WORD.sub(replace, text)


def plain_equations(text: str) -> list[tuple[str, str, int]]:
    """``(expression, written_result, position)`` for each ``expr = result`` in plain text (chained ``=`` included:
    ``a = b = c`` gives ``a`` with result ``c`` when ``b`` is a number)."""
    # unit words inside an equation ("€57/hour * 7 hours = €399", "5 feet x 3 = ") are not part of it
    text = _UNIT_IN_EQUATION.sub("", _number_words_in_equations(_BULLET.sub("", text)))
    equations = []
    for m in re.finditer(r"=", text):
        expression, start = _left_expression(text, m.start())
        if not re.search(r"\d\s*[-+*/×÷x^%]\s*[$€£(]?\s*\d|\d\s*%|\(\s*\d", expression):
            continue  # a bare number (the middle of a chain) or no arithmetic at all
        # follow the chain to its last "= number"
        position, result = m.end(), None
        while True:
            r = _RESULT.match(text, position)
            if not r:
                break
            result = r.group(1) + r.group(2)
            after = r.end()
            nxt = re.match(r"\s*=", text[after:])
            if nxt and _RESULT.match(text, after + nxt.end()):
                position = after + nxt.end()
                continue
            break
        if result is not None:
            expression = re.sub(r"(?<=[\d)])\s*x\s*(?=[\d$(])", " * ", expression)
            equations.append((expression, result, start))
    return equations


def latex_equations(text: str) -> list[tuple[str, str, int]]:
    """``(expression, written_result, position)`` from LaTeX math: ``lhs = ... = number``."""
    return [(e.expression, e.written, e.position) for e in latex_statements(text) if e.expression is not None]


_MATH_ENV = re.compile(r"\\begin\{(align|aligned|eqnarray|equation|gather|gathered|multline|split)(\*?)\}")
_ASY = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.DOTALL)


def math_segments(text: str) -> list[tuple[str, int]]:
    """``(content, position)`` of each LaTeX math region: ``$...$``, ``$$...$$``, ``\\[...\\]``, ``\\(...\\)`` and
    display environments (``align*``, ``equation``, ...); an escaped ``\\$`` is a dollar sign, not a delimiter;
    Asymptote code (``[asy]...[/asy]``) is skipped. One linear scan."""
    segments, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "[" and text.startswith("[asy]", i):
            end = text.find("[/asy]", i)
            i = n if end < 0 else end + 6
            continue
        if c == "\\":
            two = text[i : i + 2]
            closing = {"\\[": "\\]", "\\(": "\\)"}.get(two)
            m = None if closing else _MATH_ENV.match(text, i)
            if m:
                closing, two = f"\\end{{{m.group(1)}{m.group(2)}}}", m.group(0)
            if closing:
                end = text.find(closing, i + len(two))
                end = n if end < 0 else end
                segments.append((text[i + len(two) : end], i + len(two)))
                i = end + len(closing)
                continue
            i += 2  # an escaped character (\$) or a command
            continue
        if c == "$":
            closing = "$$" if text.startswith("$$", i) else "$"
            j = i + len(closing)
            while j < n and not text.startswith(closing, j):
                j += 2 if text[j] == "\\" else 1
            segments.append((text[i + len(closing) : min(j, n)], i + len(closing)))
            i = j + len(closing)
            continue
        i += 1
    return segments


@dataclass
class Statement:
    """One relation of LaTeX math: ``parts`` split at ``=``; ``expression`` is the first part that holds arithmetic,
    ``written`` the last part (the result), ``name`` the variable assigned when the first part is one (``x = 5``),
    ``boxed`` when the result is the CoT's boxed answer."""

    parts: list[str]
    position: int
    expression: str | None = None
    written: str = ""
    name: str | None = None
    boxed: bool = False


_STATEMENT_BREAK = re.compile(
    r"\\(?:Rightarrow|Longrightarrow|rightarrow|implies|iff|Leftrightarrow|therefore|quad|qquad|text\{\s*(?:and|so|or|thus|then|"
    r"hence|since|because|which|where|if|giving|we get|or)\s*,?\s*\})(?![A-Za-z])|\\\\|;|,(?=\s|\\[q ])"
)
_RELATION = re.compile(
    r"(?<![<>!\\])=|\\(?:le|ge|leq|geq|ne|neq|approx|equiv|lt|gt|sim|cong|in|subset)(?![A-Za-z])|[<>]"
)
_ARITHMETIC = re.compile(r"[-+*/^!|]|\\(?:frac|[dt]frac|times|cdot|sqrt|div|binom|lfloor|lceil)|\d\s*\(|\)\s*\(")
_NAME = re.compile(r"^\s*([A-Za-z](?:_\{?\w{1,4}\}?)?)\s*$")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _split_top(text: str, pattern: re.Pattern) -> list[tuple[str, int]]:
    """``text`` split at matches of ``pattern`` outside braces and parentheses, with each piece's offset."""
    pieces, start, depth = [], 0, 0
    depth_at = []
    for ch in text:
        depth_at.append(depth)
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth = max(0, depth - 1)
    for m in pattern.finditer(text):
        if depth_at[m.start()] == 0:
            pieces.append((text[start : m.start()], start))
            start = m.end()
    pieces.append((text[start:], start))
    return pieces


def latex_statements(text: str) -> list[Statement]:
    """Every relation written in LaTeX math, in order: display rows are split at ``\\\\``, alignment ``&`` is
    dropped, a row that starts with ``=`` continues the previous one's chain (``a &= b \\\\ &= c``), and
    ``\\Rightarrow``, ``\\quad``, ``;`` or ``, `` start a new statement. Relations other than ``=`` (``\\le``,
    ``\\equiv``) end the chain: their sides are not equal."""
    statements: list[Statement] = []
    for content, offset in math_segments(text):
        content = re.sub(r"\\(?:nonumber|notag)\b|\\(?:label|tag)\{[^{}]*\}", " ", content).replace("&", " ")
        chain: list[tuple[str, int]] = []
        pieces = _split_top(content, _STATEMENT_BREAK)
        for piece, start in pieces:
            if chain and re.match(r"\s*=", piece):
                chain.append((piece, start))  # a continued chain: "&= c" on the next row
                continue
            _close_chain(chain, offset, statements)
            chain = [(piece, start)] if piece.strip() else []
        _close_chain(chain, offset, statements)
    return statements


def _close_chain(chain: list[tuple[str, int]], offset: int, statements: list[Statement]) -> None:
    if not chain:
        return
    text = "".join(piece for piece, _ in chain)
    position = offset + chain[0][1]
    # a relation other than "=" breaks the chain: keep the "=" run that ends with the last part
    relations = list(_RELATION.finditer(text))
    cut = 0
    for m in relations:
        if m.group(0) != "=":
            cut = m.end()
    parts = (
        [p.strip() for p in text[cut:].split("=")] if cut else [p.strip() for p in re.split(r"(?<![<>!\\])=", text)]
    )
    if len(parts) < 2 or not parts[-1]:
        return
    statement = Statement(
        parts=parts, position=position + cut, written=parts[-1], boxed=bool(_BOXED.search(parts[-1]))
    )
    name = _NAME.match(parts[0]) if not cut else None
    if name:
        statement.name = re.sub(r"[{}]", "", name.group(1))
    for part in parts[:-1]:
        if re.search(r"\d", part) and _ARITHMETIC.search(part):
            statement.expression = part
            break
    statements.append(statement)


# ---------------------------------------------------------------------------------------------------------------
# Operations with provenance, and the DAG
# ---------------------------------------------------------------------------------------------------------------


def _result_value(text: str, variables: dict | None = None) -> Fraction | None:
    text = text.strip().rstrip(".,;:")
    try:
        if variables is not None:
            return evaluate(parse_expression(text, latex=True, variables=variables))
        return evaluate(parse_expression(text, latex="\\" in text))
    except (ParseError, ZeroDivisionError, ValueError):
        return None


def _operand(value: Fraction, results: list[Fraction], numbers, used_problem: set) -> dict:
    """Provenance of an operand value: an earlier result, else a problem number, else a constant."""
    for k in range(len(results) - 1, -1, -1):
        if results[k] == value:
            return {"value": format_value(value), "source": "op", "char_start": -1, "char_end": -1, "op_index": k}
    candidates = [n for n in numbers if n[0] == value]
    if candidates:
        fresh = [n for n in candidates if (n[1], n[2]) not in used_problem] or candidates
        _, a, b = fresh[0]
        used_problem.add((a, b))
        return {"value": format_value(value), "source": "problem", "char_start": a, "char_end": b, "op_index": -1}
    return {"value": format_value(value), "source": "constant", "char_start": -1, "char_end": -1, "op_index": -1}


def expression_ops(node: Node, results: list[Fraction], ops: list[dict], numbers, used: set, base: dict) -> Fraction:
    """Append the operations of ``node`` (post-order) to ``ops``; returns the node's value."""
    if node.op == "num":
        return node.value
    operands, values = [], []
    for arg in node.args:
        if arg.op == "num":
            values.append(arg.value)
            operands.append(_operand(arg.value, results, numbers, used))
        else:
            value = expression_ops(arg, results, ops, numbers, used, base)
            values.append(value)
            operands.append(
                {
                    "value": format_value(value),
                    "source": "op",
                    "char_start": -1,
                    "char_end": -1,
                    "op_index": len(ops) - 1,
                }
            )
    value = apply(node.op, values)
    ops.append({**base, "op": node.op, "operands": operands, "result": format_value(value)})
    results.append(value)
    return value


def execute(ops: list[dict], problem: str) -> Fraction | None:
    """Run the DAG from provenance alone: a problem operand must be a value the problem states at its offsets, an
    op operand is the executed value of that earlier op, a constant is taken as stated. Returns the last op's value
    (None when there is no op); a broken reference is a ParseError."""
    values: list[Fraction] = []
    stated: dict[tuple[int, int], set] = {}
    for v, a, b in problem_numbers(problem):
        stated.setdefault((a, b), set()).add(v)
    for op in ops:
        args = []
        for operand in op["operands"]:
            value = Fraction(operand["value"])
            if operand["source"] == "op":
                if not 0 <= operand["op_index"] < len(values):
                    raise ParseError(f"operand refers to op {operand['op_index']}, which is not earlier")
                value = values[operand["op_index"]]
            elif operand["source"] == "problem":
                if value not in stated.get((operand["char_start"], operand["char_end"]), set()):
                    raise ParseError(f"the problem does not state {operand['value']} at {operand['char_start']}")
            args.append(value)
        values.append(apply(op["op"], args))
    return values[-1] if values else None


def executed_answer(ops: list[dict], problem: str) -> Fraction | None:
    """The DAG's answer: the last op's executed value, in percent when the CoT wrote that result as one
    ("= 34%" answers 34)."""
    value = execute(ops, problem)
    if value is not None and ops[-1]["written_result"].rstrip().endswith("%"):
        value *= 100
    return value


_LATEX_TRACE = re.compile(r"\\(?:[A-Za-z]+|\[|\()|\$[^$\n]*[\^_{}][^$\n]*\$")


def ops_for_trace(problem: str, spans: list[dict], span_regions: list[list[dict]]) -> tuple[list[dict], int]:
    """All tier-1 operations of one trace, in CoT order, and the number of equations that failed to parse.

    A trace that writes LaTeX is read whole (a display block cut into several spans still gives its equations to the
    span where each starts): its math through :func:`latex_statements`, the prose around it through
    :func:`plain_equations`. Other traces are read span by span as plain arithmetic."""
    texts = [span["text"] for span in spans]
    full = "".join(texts)
    if not _LATEX_TRACE.search(full):
        return _plain_trace_ops(problem, texts, span_regions)
    starts, position = [], 0
    for t in texts:
        starts.append(position)
        position += len(t)
    state = _TraceState(problem, texts, span_regions)
    # prose between math regions: plain arithmetic, positions kept
    prose = list(full)
    for content, offset in math_segments(full):
        for k in range(max(0, offset - 2), min(len(full), offset + len(content) + 2)):
            prose[k] = " "
    items = [(e[2], "plain", e) for e in plain_equations("".join(prose))]
    items += [(st.position, "latex", st) for st in latex_statements(full)]
    for position, kind, item in sorted(items, key=lambda x: x[0]):
        index = max(0, bisect.bisect_right(starts, position) - 1)
        if kind == "plain":
            state.add(item[0], item[1], index, latex=False)
            continue
        state.statement(item, index)
        if item.boxed:
            break  # the CoT's boxed answer: what follows checks or comments on it
    return state.ops, state.errors


class _TraceState:
    """Operations of one trace so far: results, used problem numbers, assigned variables, parse errors."""

    def __init__(self, problem: str, texts: list[str], span_regions: list[list[dict]]):
        self.numbers = problem_numbers(problem)
        self.texts, self.span_regions = texts, span_regions
        self.results: list[Fraction] = []
        self.ops: list[dict] = []
        self.used: set = set()
        self.variables: dict[str, Fraction] = {}
        self.errors = 0

    def _base(self, expression: str, written: str, index: int) -> dict:
        regions = self.span_regions[index] if index < len(self.span_regions) else []
        return {
            "written_result": written,
            "expr": expression,
            "span_index": index,
            "span_text": self.texts[index] if index < len(self.texts) else "",
            "region": regions[0] if regions else {"char_start": -1, "char_end": -1, "text": ""},
            "parse_tier": 1,
        }

    def add(self, expression: str, written: str, index: int, latex: bool, count_errors: bool = True):
        """Parse one expression into ops; returns its value, None when it is a bare number, or a ParseError."""
        try:
            node = parse_expression(expression, latex=latex, variables=self.variables if latex else None)
        except (ParseError, ZeroDivisionError, ValueError, OverflowError) as exc:
            self.errors += count_errors
            return exc
        if node.op == "num":
            return None
        base = self._base(expression, written, index)
        n_ops, n_results = len(self.ops), len(self.results)
        try:
            value = expression_ops(node, self.results, self.ops, self.numbers, self.used, base)
        except (ParseError, ZeroDivisionError, ValueError, OverflowError) as exc:
            del self.ops[n_ops:], self.results[n_results:]  # no half-parsed expression in the DAG
            self.errors += count_errors
            return exc
        written_value = _result_value(written, self.variables if latex else None)
        if written_value is not None and written_value != value:
            rounding = _rounding_op(value, written_value, len(self.ops) - 1, base)
            if rounding is not None:  # the CoT wrote a floored / rounded result: that is a step too
                self.ops.append(rounding)
                self.results.append(written_value)
                value = written_value
        return value

    def statement(self, st: Statement, index: int) -> Fraction | None:
        """The ops of one LaTeX relation (its first part that parses, from left to right); binds ``x`` in
        ``x = ...`` to the relation's value."""
        value = None
        tried = False
        for part in st.parts[:-1]:
            if not _ARITHMETIC.search(part) or not (re.search(r"\d", part) or self.variables):
                continue
            tried = True
            result = self.add(part, st.written, index, latex=True, count_errors=False)
            if isinstance(result, Fraction):
                value = result
                break
        if value is None and len(st.parts) == 2 and st.name is None:
            value = self._solve(st, index)
        if tried and value is None:
            self.errors += 1
        if st.name is not None:
            if value is None:
                value = _result_value(st.written, self.variables)
            if value is not None:
                self.variables[st.name] = value
            else:
                self.variables.pop(st.name, None)  # x = 2y + 1: x is no longer a known number
        return value

    def _solve(self, st: Statement, index: int) -> Fraction | None:
        """Tier 2: a linear equation in one unknown (``3x - 5 = 4``), solved exactly; one ``solve`` op whose
        operands are the coefficients of ``a*u + b = c*u + d``, and the unknown is bound to its value."""
        try:
            name, coefficients, value = solve_linear(st.parts[0], st.parts[1], self.variables)
        except (ParseError, ZeroDivisionError, ValueError, OverflowError):
            return None
        operands = [_operand(c, self.results, self.numbers, self.used) for c in coefficients]
        base = {**self._base(f"{st.parts[0]} = {st.parts[1]}", name, index), "parse_tier": 2}
        self.ops.append({**base, "op": "solve", "operands": operands, "result": format_value(value)})
        self.results.append(value)
        self.variables[name] = value
        return value


def _plain_trace_ops(problem: str, texts: list[str], span_regions: list[list[dict]]) -> tuple[list[dict], int]:
    """Plain-arithmetic traces (GSM8K style): each span's equations, parsed span by span."""
    state = _TraceState(problem, texts, span_regions)
    for index, text in enumerate(texts):
        for expression, written, _ in plain_equations(text):
            state.add(expression, written, index, latex="\\" in expression)
    return state.ops, state.errors


def _rounding_op(value: Fraction, written: Fraction, index: int, base: dict) -> dict | None:
    """A ``floor`` or ``round`` op when the written result is the computed one floored or rounded, else None."""
    source = {"value": format_value(value), "source": "op", "char_start": -1, "char_end": -1, "op_index": index}
    if written == math.floor(value):
        return {**base, "op": "floor", "operands": [source], "result": format_value(written)}
    for digits in range(0, 7):
        scale = Fraction(10) ** digits
        if written == Fraction(math.floor(value * scale + Fraction(1, 2))) / scale:
            digits_operand = {
                "value": str(digits),
                "source": "constant",
                "char_start": -1,
                "char_end": -1,
                "op_index": -1,
            }
            return {**base, "op": "round", "operands": [source, digits_operand], "result": format_value(written)}
    return None


def locate_regions(ops: list[dict], span_regions: list[list[dict]], doc) -> None:
    """Give each op the problem region where it lives: the span's IAF region holding one of its problem operands;
    else the clause around its first problem operand (operand matching finds numbers, IAF finds meaning); else the
    span's heaviest IAF region (already set)."""
    for op in ops:
        positions = [o["char_start"] for o in op["operands"] if o["source"] == "problem"]
        if not positions:
            continue
        candidates = span_regions[op["span_index"]] if op["span_index"] < len(span_regions) else []
        holding = [r for r in candidates if any(r["char_start"] <= p < r["char_end"] for p in positions)]
        if holding:
            op["region"] = holding[0]
        elif doc is not None:
            token = doc.char_span(positions[0], positions[0] + 1, alignment_mode="expand")
            if token is not None and len(token):
                a, b = clause_regions_mod.clause_range(token.root)
                op["region"] = {"char_start": a, "char_end": b, "text": doc.text[a:b]}


def make_ops(batch: dict, *, verify_timeout: float, spacy_pipeline: str | None = None) -> dict:
    """``batch -> batch``: operations, their problem regions, execution and validation for each problem."""
    from .defaults import load_spacy

    out = dict(batch)
    for key in ("ops", "executed_answer", "validated", "op_status", "op_status_reason", "n_parse_errors"):
        out[key] = []
    # The parse places ops in clauses: problems without spans have no ops, and are not parsed (see clause_regions).
    docs = load_spacy(spacy_pipeline).pipe([(p or "") if s else "" for p, s in zip(batch["problem"], batch["spans"])])
    for problem, gold, spans, regions, doc in zip(
        batch["problem"], batch["answer"], batch["spans"], batch["span_regions"], docs
    ):
        ops, errors = ops_for_trace(problem or "", spans or [], regions or [])
        locate_regions(ops, regions or [], doc)
        status, reason, executed = None, "", None
        try:
            value = executed_answer(ops, problem or "")
            executed = format_value(value) if value is not None else None
        except ParseError as exc:
            status, reason = "execution_error", str(exc)
        if not spans:
            status, reason = "no_spans", "the trace has no spans"
        elif not ops:
            status, reason = "no_ops", f"no equation could be parsed from the CoT ({errors} failed)"
        elif status is None and gold is None:
            status, reason = "no_gold", "the problem has no gold answer to validate against"
        elif status is None:
            verdict = answers_match(executed, gold, timeout=verify_timeout)
            status = {True: "validated", False: "wrong_answer"}.get(verdict.match, "unverified")
            reason = "" if verdict.match else f"the DAG executes to {executed}, gold is {gold[:200]}"
            if verdict.match is None:  # a LaTeX bomb timed out, a gold too long to check: no verdict, not "wrong"
                reason = f"the answer check gave no verdict ({verdict.method}): {reason}"
        out["ops"].append(ops)
        out["executed_answer"].append(executed)
        out["validated"].append(status == "validated")
        out["op_status"].append(status)
        out["op_status_reason"].append(reason)
        out["n_parse_errors"].append(errors)
    return out


def build_op_pairs(regions: datasets.DatasetDict, config: OpPairsConfig) -> datasets.DatasetDict:
    result = datasets.DatasetDict()
    for split, dataset in regions.items():
        missing = [c for c in INPUT_COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(f"op_pairs needs input columns {missing} (the clause_regions artifact)")
        result[split] = dataset.map(
            make_ops,
            batched=True,
            batch_size=64,
            fn_kwargs={"verify_timeout": config.op_verify_timeout, "spacy_pipeline": config.op_spacy_pipeline},
            features=FEATURES,
            desc=f"op_pairs/{split}",
        )
    return result
