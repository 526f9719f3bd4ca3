"""The ``op_pairs`` artifact: each problem's operations, parsed from its CoT, linked to the problem, and executed.

**Parser, tier 1** (this module): every equation a span writes, plain arithmetic as GSM8K writes it
(``16 - 3 - 4 = 9``, ``48/2 = 24``, ``$1,200 * 20% = $240``, ``12 x 2``, chained ``a = b = c``) or LaTeX math
(``$\\frac{3}{4} \\cdot 8 = 6$``), is parsed by :mod:`mycelium_datasets.arith` (a recursive-descent parser: no
``eval``, no ``sympify``) into operations, nested expressions giving several (``0.5 * 258 + 24`` is ``mul`` then
``add``). **Tier 2** (the operation classifier, once the students exist) plugs in through ``fallback``: a callable
``(span_text, region_text) -> op | None``; it is ``None`` for now and every op records ``parse_tier``.

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

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import datasets

from . import clause_regions as clause_regions_mod
from .answers import ZERO_WIDTH, answers_match
from .arith import MAX_DIGITS, Node, ParseError, apply, evaluate, format_value, parse_expression

VERSION = "1.0.0"
INPUT_COLUMNS = ("id", "problem", "answer", "spans", "span_regions")
OP_NAMES = ("add", "sub", "mul", "div", "pow", "sqrt", "neg", "percent", "floor", "round")

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
    equations = []
    for m in _LATEX_MATH.finditer(text):
        math_text = next(g for g in m.groups() if g is not None)
        parts = [p.strip() for p in re.split(r"(?<![<>!])=", math_text)]
        if len(parts) < 2:
            continue
        result = parts[-1]
        for lhs in parts[:-1]:
            if re.search(r"\d", lhs) and re.search(r"[-+*/^]|\\frac|\\times|\\cdot|\\sqrt|\\div", lhs):
                equations.append((lhs, result, m.start()))
                break
    return equations


# ---------------------------------------------------------------------------------------------------------------
# Operations with provenance, and the DAG
# ---------------------------------------------------------------------------------------------------------------


def _result_value(text: str) -> Fraction | None:
    try:
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


def ops_for_trace(problem: str, spans: list[dict], span_regions: list[list[dict]]) -> tuple[list[dict], int]:
    """All tier-1 operations of one trace, in CoT order, and the number of equations that failed to parse."""
    numbers = problem_numbers(problem)
    results: list[Fraction] = []
    ops: list[dict] = []
    used: set = set()
    errors = 0
    for index, span in enumerate(spans):
        text = span["text"]
        regions = span_regions[index] if index < len(span_regions) else []
        region = regions[0] if regions else {"char_start": -1, "char_end": -1, "text": ""}
        found = latex_equations(text) if ("$" in text and "\\" in text) or "\\[" in text else []
        found += [e for e in plain_equations(text) if not found]
        for expression, written, _ in found:
            try:
                node = parse_expression(expression, latex="\\" in expression)
                if node.op == "num":
                    continue
                base = {
                    "written_result": written,
                    "expr": expression,
                    "span_index": index,
                    "span_text": text,
                    "region": region,
                    "parse_tier": 1,
                }
                value = expression_ops(node, results, ops, numbers, used, base)
            except (ParseError, ZeroDivisionError, ValueError, OverflowError):
                errors += 1
                continue
            written_value = _result_value(written)
            if written_value is not None and written_value != value:
                rounding = _rounding_op(value, written_value, len(ops) - 1, base)
                if rounding is not None:  # the CoT wrote a floored / rounded result: that is a step too
                    ops.append(rounding)
                    results.append(written_value)
    return ops, errors


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
