"""The operation graph of a chain of thought: operations with operand provenance, executed and validated.

Each equation the CoT writes (read by :mod:`mycelium_datasets.equations`, parsed by :mod:`mycelium_datasets.arith`:
no ``eval``, no ``sympify``) becomes operations, nested expressions giving several (``0.5 * 258 + 24`` is ``mul``
then ``add``). **Tier 1** is that parser, over plain and LaTeX equations; **tier 2** solves an equation in one
unknown exactly: linear (``3x - 5 = 4``) into one ``solve`` op, polynomial of degree 2 to 4 (``N^2 = 121``) into one
``poly_root`` op that takes the root the CoT goes on to use; when a trace does not validate otherwise, two linear
equations in two unknowns are solved as a system (:mod:`mycelium_datasets.systems`, one ``solve2`` op per unknown).
**Tier 3** reads a step the parsers miss ("Since Maddy has 40 eggs / 10 eggs each week, they will last 4 weeks",
"9 and 9 make 18") with the operation classifier as a fallback (:class:`OpFallback`): its top operation sequences
for the step, tried on the step's numbers in turn, are kept only where they give the number the step writes last,
and the whole DAG only where it then reaches the gold. Every op records ``parse_tier``. Values are exact: Fractions,
or sympy numbers built from the parse tree when irrational (``3\\sqrt{13}``, ``288\\pi``).

**Provenance**: each operand is an earlier operation's result (``source: op``, ``op_index``), a number written in the
problem (``source: problem``, character offsets; see :mod:`mycelium_datasets.numbers`), or an implicit constant
(``source: constant``, e.g. 60 minutes in an hour).

**Execution is the verifier**: :func:`execute` runs the DAG with exact values from the operands' provenance alone;
:func:`validate_trace` parses, places and executes one problem's CoT and compares the result with the gold answer.
It is the one definition of a validated DAG, used by the ``op_pairs`` artifact and by the evaluation's references.
"""

from __future__ import annotations

import bisect
import itertools
import re
from fractions import Fraction
from typing import Protocol

from .answers import answers_match
from .arith import (
    Node,
    ParseError,
    apply,
    evaluate,
    format_value,
    parse_expression,
    parse_value,
    solve_equation,
    values_equal,
)
from .clauses import clause_range
from .equations import (
    ARITHMETIC,
    Statement,
    glued_units,
    latex_statements,
    math_segments,
    plain_algebra,
    plain_equations,
    plain_systems,
)
from .numbers import problem_numbers
from .systems import execute_op, linear_equation, solve_system

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
    "solve2",
    "poly_root",
)


# What tier 3 may read a step as: the arithmetic a classifier names. Tier 3 reads traces in prose only (GSM8K's):
# in a LaTeX trace (MATH) the steps the parsers miss count, bound or split cases, and a chain over their small
# numbers reaches the written one by coincidence (9 of 11 MATH-500 dev tier-3 validations, read by hand: "3 in one
# and 2 in the other, for a total of 3 arrangements" read as 1 + 2).
TIER3_OPS = ("add", "sub", "mul", "div")
TIER3_TOP_K = 3  # operation sequences tried per step, the classifier's most probable first
TIER3_MAX_OPS = 2  # longest operation sequence tried on one step


class OpFallback(Protocol):
    """What tier 3 needs from an operation classifier (``MyceliumSolver`` is one): for each text, its operation
    sequences (``("mul",)``, ``("sub", "div")``), most probable first."""

    def rank_operations(self, texts: list[str], k: int = TIER3_TOP_K) -> list[list[tuple[str, ...]]]: ...


def _same(a, b) -> bool:
    """Cheap exact equality for provenance: Fractions by value, symbolic values by their canonical (expanded) form."""
    return isinstance(a, Fraction) == isinstance(b, Fraction) and a == b


def _result_value(text: str, variables: dict | None = None):
    text = text.strip().rstrip(".,;:")
    try:
        if variables is not None:
            return evaluate(parse_expression(text, latex=True, variables=variables))
        return evaluate(parse_expression(text, latex="\\" in text))
    except (ParseError, ZeroDivisionError, ValueError):
        return None


def _operand(value, results: list, numbers, used_problem: set) -> dict:
    """Provenance of an operand value: an earlier result, else a problem number, else a constant."""
    for k in range(len(results) - 1, -1, -1):
        if _same(results[k], value):
            return {"value": format_value(value), "source": "op", "char_start": -1, "char_end": -1, "op_index": k}
    candidates = [n for n in numbers if n[0] == value] if isinstance(value, Fraction) else []
    if candidates:
        fresh = [n for n in candidates if (n[1], n[2]) not in used_problem] or candidates
        _, a, b = fresh[0]
        used_problem.add((a, b))
        return {"value": format_value(value), "source": "problem", "char_start": a, "char_end": b, "op_index": -1}
    return {"value": format_value(value), "source": "constant", "char_start": -1, "char_end": -1, "op_index": -1}


def _op_operand(value, op_index: int) -> dict:
    return {"value": format_value(value), "source": "op", "char_start": -1, "char_end": -1, "op_index": op_index}


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


def execute(ops: list[dict], problem: str):
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
            if operand["source"] == "op":
                if not 0 <= operand["op_index"] < len(values):
                    raise ParseError(f"operand refers to op {operand['op_index']}, which is not earlier")
                value = values[operand["op_index"]]
                args.append(value)
                continue
            value = parse_value(operand["value"])
            if operand["source"] == "problem":
                if value not in stated.get((operand["char_start"], operand["char_end"]), set()):
                    raise ParseError(f"the problem does not state {operand['value']} at {operand['char_start']}")
            args.append(value)
        values.append(execute_op(op["op"], args))
    return values[-1] if values else None


def executed_answer(ops: list[dict], problem: str):
    """The DAG's answer: the last op's executed value, in percent when the CoT wrote that result as one
    ("= 34%" answers 34)."""
    value = execute(ops, problem)
    if value is not None and ops[-1]["written_result"].rstrip().endswith("%"):
        value = apply("mul", [value, Fraction(100)])
    return value


_LATEX_TRACE = re.compile(r"\\(?:[A-Za-z]+|\[|\()|\$[^$\n]*[\^_{}][^$\n]*\$")


def ops_for_trace(
    problem: str,
    spans: list[dict],
    span_regions: list[list[dict]],
    ranks: dict[int, list[tuple[str, ...]]] | None = None,
    systems: bool = False,
) -> tuple[list[dict], int]:
    """All operations of one trace, in CoT order, and the number of equations that failed to parse.

    A trace that writes LaTeX is read whole (a display block cut into several spans still gives its equations to the
    span where each starts): its math through :func:`latex_statements`, the prose around it through
    :func:`plain_equations`. Other traces are read span by span as plain arithmetic. ``ranks`` (span index -> the
    classifier's operation sequences for that span) turns on tier 3 for those spans that give no op otherwise.
    ``systems`` reads pairs of linear equations in two unknowns as a system (:meth:`_TraceState.system`)."""
    texts = [span["text"] for span in spans]
    full = "".join(texts)
    if not _LATEX_TRACE.search(full):
        return _plain_trace_ops(problem, texts, span_regions, ranks or {}, systems)
    starts, position = [], 0
    for t in texts:
        starts.append(position)
        position += len(t)
    state = _TraceState(problem, texts, span_regions, systems)
    # prose between math regions: plain arithmetic, positions kept
    prose = list(full)
    for content, offset in math_segments(full):
        for k in range(max(0, offset - 2), min(len(full), offset + len(content) + 2)):
            prose[k] = " "
    items = [(e[2], "plain", e) for e in plain_equations("".join(prose))]
    statements = latex_statements(full)
    items += [(st.position, "latex", (k, st)) for k, st in enumerate(statements)]
    ends = [*starts[1:], len(full)]
    items += [(ends[i] - 0.5, "tier3", i) for i in sorted(ranks or {}) if i < len(texts)]  # after the span's own
    for position, kind, item in sorted(items, key=lambda x: x[0]):
        index = max(0, bisect.bisect_right(starts, position) - 1)
        if kind == "tier3":
            if not any(op["span_index"] == item for op in state.ops):
                state.tier3(item, texts[item], ranks[item])
            continue
        if kind == "plain":
            state.add(item[0], item[1], index, latex=False)
            continue
        k, st = item
        state.statement(st, index, later=statements[k + 1 : k + 1 + _LOOKAHEAD])
        if st.boxed:
            break  # the CoT's boxed answer: what follows checks or comments on it
    if state.answer_op is not None:  # "x = \boxed{5}" names the op that gave x: later ops are checks, not the answer
        del state.ops[state.answer_op + 1 :]
    return state.ops, state.errors


# e = \frac{16}{5}: a number written as a fraction, not a computation (an op from it would only restate the answer)
_FRACTION_LITERAL = re.compile(
    r"\s*-?\s*(?:\\[dt]?frac\s*\{?\s*\d+\s*\}?\s*\{?\s*\d+\s*\}?|\d+\s*/\s*\d+)\s*[.,;:]?\s*$"
)
_IMPLICIT_PRODUCT = re.compile(r"\d\s*[A-Za-zα-μ]")
_LOOKAHEAD = 12  # statements read ahead to find which root of a polynomial equation the CoT goes on to use


class _TraceState:
    """Operations of one trace so far: results, used problem numbers, assigned variables, parse errors."""

    def __init__(self, problem: str, texts: list[str], span_regions: list[list[dict]], systems: bool = False):
        self.numbers = problem_numbers(problem)
        self.texts, self.span_regions = texts, span_regions
        self.results: list[Fraction] = []
        self.ops: list[dict] = []
        self.used: set = set()
        self.variables: dict[str, Fraction] = {}
        self.bound_by: dict[str, int] = {}  # variable -> the op whose result it was assigned
        self.answer_op: int | None = None
        self.errors = 0
        self.systems = systems  # read pairs of equations in two unknowns as systems
        self.pending: list[tuple] = []  # equations in two unknowns waiting for a second in the same two

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
        if written_value is not None and not values_equal(written_value, value):
            rounding = _rounding_op(value, written_value, len(self.ops) - 1, base)
            if rounding is not None:  # the CoT wrote a floored / rounded result: that is a step too
                self.ops.append(rounding)
                self.results.append(written_value)
                value = written_value
        return value

    def statement(self, st: Statement, index: int, later: list[Statement] = ()):
        """The ops of one LaTeX relation (its first part that parses, from left to right); binds ``x`` in
        ``x = ...`` to the relation's value. ``later``: the statements that follow (which root the CoT uses)."""
        value = None
        tried = False
        n_ops = len(self.ops)
        for part in st.parts[:-1]:
            implicit = self.variables and _IMPLICIT_PRODUCT.search(part)  # 2x, with x known
            if not (ARITHMETIC.search(part) or implicit) or not (re.search(r"\d", part) or self.variables):
                continue
            tried = True
            result = self.add(part, st.written, index, latex=True, count_errors=False)
            if result is not None and not isinstance(result, Exception):
                value = result
                break
        if value is None and len(st.parts) == 2 and st.name is None:
            value = self._solve(st, index, later)
        solved = {}
        if value is None and len(st.parts) == 2 and self.systems:  # y = x + 140 (and x + y = 198 before or after)
            solved = self.system(*(part.rstrip(".,;: ") for part in st.parts), index, bind=True)
            value = solved.get(st.name)
        literal = _FRACTION_LITERAL.match(re.sub(r"\\(?:boxed|fbox)\s*\{(.*)\}", r"\1", st.written))
        assigned = st.name is not None and len(st.parts) == 2 and not literal
        if value is None and assigned and ARITHMETIC.search(st.written):
            result = self.add(st.written.rstrip(".,;: "), st.written, index, latex=True)  # let x = 26^2 - 24^2
            value = None if isinstance(result, Exception) else result
        if tried and value is None:
            self.errors += 1
        if st.boxed and self.ops and len(self.ops) == n_ops:
            self._boxed_names_op(st)
        if st.name is not None:
            if value is None:
                value = _result_value(st.written, self.variables)
                known = self.variables.get(st.name)
                if value is None or known is None or not values_equal(value, known):
                    self.bound_by.pop(st.name, None)  # "y = 0" after solving y = 0 restates it; else x is rebound
            elif len(self.ops) > n_ops and st.name not in solved:
                self.bound_by[st.name] = len(self.ops) - 1
            if value is not None:
                self.variables[st.name] = value
            else:
                self.variables.pop(st.name, None)  # x = 2y + 1: x is no longer a known number
        return value

    def tier3(self, index: int, text: str, sequences: list[tuple[str, ...]]) -> bool:
        """Tier 3: a step no parser read, as the first reading that, applied in a chain to the step's numbers (or
        the previous op's result and its numbers), gives the number the step writes last, where no op hands back
        an input unchanged (x * 1, x + 0) and, when the step names operations, every op is one it names
        (:func:`named_ops`). Readings are tried fewest operations first: each single operation (those among the
        classifier's ``sequences`` first, in its order), then the classifier's sequences of two. Appends that
        chain's ops (``parse_tier: 3``); False when no reading gives the written number."""
        numbers = step_numbers(text)
        if len(numbers) < 2:
            return False
        previous = self.results[-1] if self.results else None
        usable = [q for q in sequences if q and len(q) <= TIER3_MAX_OPS and set(q) <= set(TIER3_OPS)]
        # the fewest operations that explain the step, the likeliest first: every single operation (the classifier's
        # own single ones first, "2 and 2 make 4" is add or mul), then the classifier's longer sequences
        singles = [q for q in usable if len(q) == 1] + [(op,) for op in TIER3_OPS if (op,) not in usable]
        named = named_ops(text)
        for sequence in singles + [q for q in usable if len(q) > 1]:
            if named and not set(sequence) <= named:
                continue
            for values, positions in tier3_candidates(numbers, previous, sequence):
                try:
                    first = values if len(sequence) == 1 else values[:2]  # a single add / mul may be n-ary
                    chain = [apply(sequence[0], first)]
                    inputs = [first]
                    for op, value in zip(sequence[1:], values[2:]):
                        chain.append(apply(op, [chain[-1], value]))
                        inputs.append([chain[-2], value])
                except (ParseError, ZeroDivisionError, ValueError, OverflowError):
                    continue
                if any(_neutral(op, args) for op, args in zip(sequence, inputs)):
                    continue  # x * 1, x / 1, x + 0 say nothing: "1 times 100 equals 100" restates 100
                if any(_same(chain[-1], written) for written in numbers[-1]):
                    self._add_chain(index, text, sequence, values, positions, chain)
                    return True
        return False

    def _add_chain(self, index, text, sequence, values, positions, chain) -> None:
        base = {**self._base(text.strip(), format_value(chain[-1]), index), "parse_tier": 3}
        previous_op = len(self.results) - 1
        for k, op in enumerate(sequence):
            operands = []
            first = len(values) if len(sequence) == 1 else 2
            inputs = values[:first] if k == 0 else [chain[k - 1], values[k + 1]]
            sources = positions[:first] if k == 0 else [None, positions[k + 1]]
            for value, source in zip(inputs, sources):
                if source is None:  # the chain's own previous op
                    operands.append(_op_operand(value, len(self.ops) - 1))
                elif source == -1:  # the result of the op before this step
                    operands.append(_op_operand(value, previous_op))
                else:
                    operands.append(_operand(value, self.results, self.numbers, self.used))
            self.ops.append({**base, "op": op, "operands": operands, "result": format_value(chain[k])})
            self.results.append(chain[k])

    def _boxed_names_op(self, st: Statement) -> None:
        """A boxed answer that is not the last op's result but is the value an op assigned to an unknown
        (``3x = 180``, ..., ``x = \\boxed{60}``): that op answers, and the ops after it were checks."""
        boxed = _result_value(st.written, self.variables)
        if boxed is None or values_equal(boxed, self.results[-1]):
            return
        for k in sorted(self.bound_by.values(), reverse=True):
            if values_equal(self.results[k], boxed):
                self.answer_op = k
                return

    def _solve(self, st: Statement, index: int, later: list[Statement] = ()):
        """Tier 2: an equation in one unknown, solved exactly, and the unknown bound to its value. Linear
        (``3x - 5 = 4``): one ``solve`` op whose operands are the coefficients of ``a*u + b = c*u + d``. Polynomial of
        degree 2 to 4 (``N^2 = 121``, ``0 = 4x(x-5)``): one ``poly_root`` op whose operands are the coefficients of
        ``left - right``, highest degree first, and the index of the root (ascending) that the CoT goes on to use."""
        left, right = (part.rstrip(".,;: ") for part in st.parts)  # "k - 1 = 1," ends a sentence
        try:
            op, name, coefficients, roots = solve_equation(left, right, self.variables)
        except (ParseError, ZeroDivisionError, ValueError, OverflowError, TypeError):
            return None
        k = 0 if op == "solve" else self._chosen_root(name, roots, later)
        if k is None:
            return None
        value = roots[k]
        if op == "poly_root":
            coefficients = [*coefficients, Fraction(k)]
        operands = [_operand(c, self.results, self.numbers, self.used) for c in coefficients]
        if op == "poly_root":  # the root's index is the op's own choice, never an input's value
            operands[-1] = {"value": str(k), "source": "constant", "char_start": -1, "char_end": -1, "op_index": -1}
        base = {**self._base(f"{st.parts[0]} = {st.parts[1]}", name, index), "parse_tier": 2}
        self.ops.append({**base, "op": op, "operands": operands, "result": format_value(value)})
        self.results.append(value)
        self.variables[name] = value
        self.bound_by[name] = len(self.ops) - 1
        return value

    def system(self, left: str, right: str, index: int, bind: bool) -> dict:
        """Tier 2: an equation in two unknowns (``y = x + 140``) waits for a second one in the same two (``y + x =
        198``); an independent pair is solved exactly, one ``solve2`` op per unknown whose operands are the
        coefficients ``a1, b1, c1, a2, b2, c2`` of ``a*u + b*v = c`` (for ``v`` each equation's first two swapped),
        in alphabetical order unless only the first one's value is written later in the trace (that one comes last).
        ``bind``: the unknowns take their values (LaTeX traces; a plain trace never substitutes a letter). Returns
        the values found ({} while the equation waits, or when it is not linear in two unknowns)."""
        try:
            names, row = linear_equation(left, right, self.variables if bind else None)
        except (ParseError, ZeroDivisionError, ValueError, OverflowError, TypeError):
            return {}
        expression = f"{left} = {right}"
        for k in range(len(self.pending) - 1, -1, -1):
            other_names, other_row, other_expression = self.pending[k]
            if other_names != names:
                continue
            try:
                values = solve_system(other_row, row)
            except (ParseError, ZeroDivisionError, ValueError, OverflowError, TypeError):
                return {}  # the same equation restated: still waiting for an independent one
            del self.pending[k]
            (a1, b1, c1), (a2, b2, c2) = other_row, row
            solutions = list(zip(names, values, ([a1, b1, c1, a2, b2, c2], [b1, a1, c1, b2, a2, c2])))
            written = [value for value, _, _ in problem_numbers("".join(self.texts[index + 1 :]))]
            if [any(_same(v, w) for w in written) for v in values] == [True, False]:
                solutions.reverse()  # the unknown the CoT goes on to write comes last: it may be the answer
            base = {**self._base(f"{other_expression}; {expression}", "", index), "parse_tier": 2}
            for name, value, coefficients in solutions:
                operands = [_operand(c, self.results, self.numbers, self.used) for c in coefficients]
                self.ops.append({**base, "written_result": name, "op": "solve2", "operands": operands})
                self.ops[-1]["result"] = format_value(value)
                self.results.append(value)
                if bind:
                    self.variables[name] = value
                    self.bound_by[name] = len(self.ops) - 1
            return dict(zip(names, values))
        self.pending.append((names, row, expression))
        return {}

    def solve_plain(self, left: str, right: str, index: int):
        """Tier 2 on a plain trace: ``2x+140=198``, ``7 + x = 2 * x`` solved for its letter when linear (no root to
        choose)."""
        letter = re.search(r"[a-zA-Z]", left + right).group(0)
        self.variables.pop(letter, None)  # a plain trace never substitutes a letter: each equation is solved alone
        st = Statement(parts=[left, right], position=0, written=right)
        n_ops = len(self.ops)
        value = self._solve(st, index)
        if value is not None and self.ops[n_ops:] and self.ops[-1]["op"] != "solve":
            del self.ops[n_ops:], self.results[n_ops:]  # polynomial equations are read in LaTeX traces only
            self.variables.pop(letter, None)
            return None
        self.variables.pop(letter, None)
        return value

    def _chosen_root(self, name: str, roots: list, later: list[Statement]) -> int | None:
        """Which root the CoT goes on to use: the value a later ``name = ...`` assigns, else the value of a later
        boxed answer, else the only root; None (no op) when the CoT does not say."""
        scope = {k: v for k, v in self.variables.items() if k != name}
        for st in later:
            if st.name == name or st.boxed:
                value = _result_value(st.written, scope)
                matches = [k for k, r in enumerate(roots) if value is not None and values_equal(r, value)]
                if matches:
                    return matches[0]
                if st.name == name:
                    return None  # the CoT assigns the unknown something else: no guess
        return 0 if len(roots) == 1 else None


def _plain_trace_ops(
    problem: str,
    texts: list[str],
    span_regions: list[list[dict]],
    ranks: dict[int, list[tuple[str, ...]]],
    systems: bool = False,
) -> tuple[list[dict], int]:
    """Plain-arithmetic traces (GSM8K style): each span's equations, parsed span by span (tier 3 for a span in
    ``ranks`` that gives no op; systems of two linear equations with ``systems``)."""
    state = _TraceState(problem, texts, span_regions, systems)
    units = glued_units("".join(texts))  # "400g", "40A": letters the trace writes only against numbers
    for index, text in enumerate(texts):
        n_ops = len(state.ops)
        items = [(p, "arithmetic", (e, w)) for e, w, p in plain_equations(text, units)]
        items += [(p, "algebra", (left, right)) for left, right, p in plain_algebra(text)]
        if systems:
            items += [(p, "system", (left, right)) for left, right, p in plain_systems(text)]
        for _, kind, (first, second) in sorted(items, key=lambda item: item[0]):
            if kind == "arithmetic":
                state.add(first, second, index, latex="\\" in first)
            elif kind == "algebra":  # tier 2 in plain text: "2x+140=198"
                state.solve_plain(first, second, index)
            else:  # tier 2: "y = x + 140, and y + x = 198"
                state.system(first, second, index, bind=False)
        if index in ranks and len(state.ops) == n_ops:
            state.tier3(index, text, ranks[index])
    return state.ops, state.errors


_NUMBER_AHEAD = r"(?=\s*[$€£(]?\s*\.?\d)"
_NAMED_OPS = {  # what a step that names its operations calls them: signs between numbers, or words
    "add": re.compile(r"(?<=[\w)%])\s*\+|\b(?:plus|add|adds|added|adding)\b", re.IGNORECASE),
    "sub": re.compile(rf"(?<=[\d)%])\s*[-–−]{_NUMBER_AHEAD}|\s[-–−]\s|\b(?:minus|subtract\w*|less)\b", re.IGNORECASE),
    "mul": re.compile(rf"[*×]|(?<=[\d)%])\s*[xX]{_NUMBER_AHEAD}|\b(?:times|multipl\w*|product)\b", re.IGNORECASE),
    "div": re.compile(rf"(?<=[\d)])\s*[/÷]{_NUMBER_AHEAD}|\b(?:divid\w*|split)\b", re.IGNORECASE),
}


def named_ops(text: str) -> set[str]:
    """The operations a step names by sign ("12 * (3/4)") or word ("8 minus 6"); tier 3 reads such a step only
    with operations among them ("12cm*(3/4) = 9cm" is never 12 - 3)."""
    return {op for op, pattern in _NAMED_OPS.items() if pattern.search(text)}


# a step that writes algebra ("1/2*X + 14", "2x", "X - 5"): tier 2's, never tier 3's ("1/2*X + 14 in the first store
# and 1/3*X + 16" holds 2 + 14 = 16 by coincidence)
_ALGEBRA_STEP = re.compile(r"(?<![A-Za-z'’])(?:\d\s*\*?\s*[A-Za-wyzA-WYZ]|[A-Za-z]\s*[-+*/]\s*[\d(])(?![A-Za-z'’])")


def _neutral(op: str, args: list) -> bool:
    """Whether ``op`` on ``args`` hands one of them back unchanged: times or divided by 1, plus or minus 0."""
    unit = Fraction(1) if op in ("mul", "div") else Fraction(0)
    tail = args[1:] if op in ("sub", "div") else args
    return any(_same(a, unit) for a in tail)


def step_numbers(text: str) -> list[list[Fraction]]:
    """The numbers a CoT step writes, in text order, each as its readings (``80%``: 80 and 0.8; *half*: 1/2 and 2)."""
    groups: dict[tuple[int, int], list[Fraction]] = {}
    for value, a, b in problem_numbers(text):
        readings = groups.setdefault((a, b), [])
        if value not in readings:
            readings.append(value)
    return [groups[key] for key in sorted(groups)]


def tier3_candidates(numbers: list[list[Fraction]], previous, sequence: tuple[str, ...]):
    """Operand chains for one operation sequence on a step's numbers (the last one is the written result): each
    window of ``len(sequence) + 1`` consecutive numbers before it, the latest first, or, when the step writes fewer
    numbers than that, the previous op's result followed by a window one shorter. A single ``sub`` or ``div`` is
    also tried with its two operands swapped, a single ``add`` or ``mul`` also over all the numbers before the
    result. Numbers equal to the result that open the step are not operands (the step restates its result: "gets 2
    desserts because 26 divided by 13 equals 2"). Yields ``(values, positions)``, ``positions`` being indices into
    ``numbers`` (-1 for the previous result)."""
    n = len(sequence) + 1
    # "Each student gets 2 desserts because 26 divided by 13 equals 2": the step opens by restating its result
    operands = list(numbers[:-1])
    while operands and any(_same(v, w) for v in operands[0] for w in numbers[-1]):
        operands.pop(0)
    windows = [list(range(start, start + n)) for start in range(len(operands) - n, -1, -1)]
    if previous is not None and len(operands) < n:  # the step writes too few numbers: it goes on from the last result
        windows += [[-1, *range(start, start + n - 1)] for start in range(len(operands) - n + 1, -1, -1)]
    for positions in windows:
        readings = [[previous] if k == -1 else operands[k] for k in positions]
        for values in itertools.product(*readings):
            yield list(values), positions
            if len(sequence) == 1 and sequence[0] in ("sub", "div"):
                yield list(values)[::-1], positions[::-1]
    if len(sequence) == 1 and sequence[0] in ("add", "mul") and len(operands) > n:  # 30 plus 28 plus 32 equals 90
        positions = list(range(len(operands)))
        for values in itertools.product(*operands):
            yield list(values), positions


def _rounding_op(value, written, index: int, base: dict) -> dict | None:
    """A ``floor`` or ``round`` op when the written result is the computed one floored or rounded, else None."""
    if not isinstance(written, Fraction):
        return None
    source = {"value": format_value(value), "source": "op", "char_start": -1, "char_end": -1, "op_index": index}
    if written == apply("floor", [value]):
        return {**base, "op": "floor", "operands": [source], "result": format_value(written)}
    for digits in range(0, 7):
        if written == apply("round", [value, Fraction(digits)]):
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
    span's heaviest IAF region (already set); else, for an op that takes only results and constants and whose span
    has no IAF region (a reference read without attention), the region of the op whose result it takes first."""
    _place_by_operands(ops, span_regions, doc)
    for op in ops:
        if op["region"]["char_start"] >= 0:
            continue
        inputs = [o["op_index"] for o in op["operands"] if o["source"] == "op" and 0 <= o["op_index"] < len(ops)]
        placed = [ops[j]["region"] for j in inputs if ops[j]["region"]["char_start"] >= 0]
        if placed:
            op["region"] = dict(placed[0])


def _place_by_operands(ops: list[dict], span_regions: list[list[dict]], doc) -> None:
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
                a, b = clause_range(token.root)
                op["region"] = {"char_start": a, "char_end": b, "text": doc.text[a:b]}


OP_STATUSES = ("validated", "wrong_answer", "unverified", "no_ops", "no_spans", "no_gold", "execution_error")


def validate_trace(
    problem: str,
    gold: str | None,
    spans: list[dict],
    span_regions: list[list[dict]],
    doc=None,
    verify_timeout: float = 5.0,
    fallback: OpFallback | None = None,
) -> dict:
    """One problem's operation DAG from its CoT spans: parsed, placed in the problem (``span_regions``, else the
    clause of ``doc`` around the first problem operand), executed, and checked against ``gold``.

    A trace whose DAG does not validate is read again with its pairs of linear equations in two unknowns solved as
    systems (``solve2``); that reading replaces the first only if it validates. Not on the first reading: a CoT that
    writes a system nearly always solves it itself, step by step, and with the system solved first its own steps
    become arithmetic on known values after the answer (MATH-500 dev 187 and 212 were lost that way).

    With ``fallback`` (an operation classifier), a prose trace (no LaTeX) whose DAG does not validate is read again
    with tier 3 for the spans that gave no op and write at least two numbers; that reading replaces the first only if
    it validates.

    Returns ``ops``, ``executed_answer``, ``validated``, ``op_status`` (one of :data:`OP_STATUSES`: ``unverified``
    when the answer check gave no verdict, e.g. a timeout), ``op_status_reason`` and ``n_parse_errors``.
    """
    row = _validated_dag(problem, gold, spans, span_regions, doc, verify_timeout)
    if row["op_status"] not in ("wrong_answer", "no_ops", "execution_error"):
        return row
    system = _validated_dag(problem, gold, spans, span_regions, doc, verify_timeout, systems=True)
    if system["validated"] and any(op["op"] == "solve2" for op in system["ops"]):
        return system
    if fallback is None:
        return row
    if _LATEX_TRACE.search("".join(span["text"] for span in spans)):
        return row  # tier 3 reads prose traces only (see TIER3_OPS)
    read = {op["span_index"] for op in row["ops"]}
    unread = [
        i
        for i, span in enumerate(spans)
        if i not in read and len(step_numbers(span["text"])) >= 2 and not _ALGEBRA_STEP.search(span["text"])
    ]
    if not unread:
        return row
    ranked = fallback.rank_operations([spans[i]["text"] for i in unread])
    ranks = {i: [tuple(sequence) for sequence in r] for i, r in zip(unread, ranked)}
    tier3 = _validated_dag(problem, gold, spans, span_regions, doc, verify_timeout, ranks)
    if tier3["validated"] and any(op["parse_tier"] == 3 for op in tier3["ops"]):
        return tier3
    return row


def _validated_dag(problem, gold, spans, span_regions, doc, verify_timeout, ranks=None, systems=False) -> dict:
    ops, errors = ops_for_trace(problem, spans, span_regions, ranks, systems)
    locate_regions(ops, span_regions, doc)
    status, reason, executed = None, "", None
    try:
        value = executed_answer(ops, problem)
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
    return {
        "ops": ops,
        "executed_answer": executed,
        "validated": status == "validated",
        "op_status": status,
        "op_status_reason": reason,
        "n_parse_errors": errors,
    }
