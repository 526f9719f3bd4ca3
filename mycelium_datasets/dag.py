"""A solution as the students write it: units of problem text, operations in them, operands as pointers.

This is the representation the ``bindings`` artifact records from the validated DAGs and the solver predicts from the
problem text alone, so that both run through one executor:

- a **unit** is a contiguous run of problem text that holds operations: the operation regions merged where they
  overlap or are separated by spaces only, grown to whole words (:func:`units_from_regions`). A perfect IO tagger
  reproduces the units exactly (its OP runs go through the same function), and several operations may share one;
- an **operation** has an operation name (``add``, ``mul``, ...), its unit, and its operands as **pointers**:
  ``quantity`` (the index of a number the problem writes, in :func:`~mycelium_datasets.numbers.quantities` order),
  ``op`` (another operation's result: any operation, not only an earlier one) or ``constant`` (an implicit
  constant such as 60 minutes in an hour or 100 for a percent, from a vocabulary learned on the training split);
- the **answer** is one operation's value (SELECTION).

Operations are listed in *layout order*: units in text order, then each unit's operations in the order the CoT
wrote them, which is what a tagger + classifier produce. A result may be consumed by an operation earlier in that
order (the question clause often comes first), so :func:`execute` runs the operations in dependency order and
rejects a cycle.
"""

from __future__ import annotations

from fractions import Fraction

from .arith import ParseError, parse_value
from .systems import execute_op

POINTER_KINDS = ("quantity", "op", "constant")
# Operands each operation takes: (fewest, most). add / sub / mul / div take two or more (a - b - c is one sub).
MAX_OPERANDS = 6
ARITY: dict[str, tuple[int, int]] = {
    **{op: (2, MAX_OPERANDS) for op in ("add", "sub", "mul", "div")},
    **{op: (2, 2) for op in ("pow", "root", "binom", "round")},
    **{op: (1, 1) for op in ("sqrt", "neg", "percent", "floor", "ceil", "abs", "factorial")},
    "solve": (4, 4),
    "solve2": (6, 6),  # a system of two linear equations: a1, b1, c1, a2, b2, c2 (a*u + b*v = c), gives u
    "poly_root": (4, MAX_OPERANDS),  # coefficients of degree 2..4, highest first, then the root's index
}


class DagError(ValueError):
    """A pointer that resolves to nothing, a cycle, or an operation the executor cannot run."""


def snap_to_words(text: str, a: int, b: int) -> tuple[int, int]:
    """``[a, b)`` grown to whole words (a region may start or end inside one: "The ve|nding")."""
    while a > 0 and text[a - 1].isalnum():
        a -= 1
    while b < len(text) and text[b].isalnum():
        b += 1
    return a, b


def units_from_regions(text: str, regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The units of ``text`` that ``regions`` (character ranges, any order) make: each grown to whole words, then
    merged with its neighbour when they overlap, touch or are separated by spaces only; in text order."""
    units: list[tuple[int, int]] = []
    for a, b in sorted(snap_to_words(text, a, b) for a, b in regions if b > a):
        if units and (a <= units[-1][1] or not text[units[-1][1] : a].strip()):
            units[-1] = (units[-1][0], max(b, units[-1][1]))
        else:
            units.append((a, b))
    return units


def unit_of(units: list[tuple[int, int]], char_start: int) -> int:
    """Index of the unit holding ``char_start`` (-1 when none does)."""
    for k, (a, b) in enumerate(units):
        if a <= char_start < b:
            return k
    return -1


def layout_order(op_units: list[int]) -> list[int]:
    """Operation indices in layout order: by unit (text order), then by their own order."""
    return sorted(range(len(op_units)), key=lambda i: (op_units[i], i))


def dependency_order(ops: list[dict]) -> list[int]:
    """An order in which every operation comes after the operations whose results it takes; a :class:`DagError`
    on a cycle or a pointer to an operation that does not exist."""
    order: list[int] = []
    state = [0] * len(ops)  # 0 new, 1 on the stack, 2 done

    def visit(i: int) -> None:
        stack = [(i, iter(_op_inputs(ops, i)))]
        state[i] = 1
        while stack:
            node, inputs = stack[-1]
            nxt = next(inputs, None)
            if nxt is None:
                stack.pop()
                state[node] = 2
                order.append(node)
            elif state[nxt] == 1:
                raise DagError(f"operation {nxt} depends on its own result")
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(_op_inputs(ops, nxt))))

    for i in range(len(ops)):
        if state[i] == 0:
            visit(i)
    return order


def _op_inputs(ops: list[dict], i: int) -> list[int]:
    inputs = []
    for operand in ops[i]["operands"]:
        if operand["kind"] == "op":
            j = operand["index"]
            if not 0 <= j < len(ops) or j == i:
                raise DagError(f"operation {i} takes the result of operation {j}, which does not exist")
            inputs.append(j)
    return inputs


def operand_value(operand: dict, quantities: list, constants: list[Fraction], values: dict[int, Fraction]) -> Fraction:
    """The value a pointer resolves to: a problem quantity, a vocabulary constant, or an executed result."""
    kind, index = operand["kind"], operand["index"]
    if kind == "quantity":
        if not 0 <= index < len(quantities):
            raise DagError(f"quantity {index} does not exist ({len(quantities)} in the problem)")
        return Fraction(quantities[index][0])
    if kind == "constant":
        if 0 <= index < len(constants):
            return constants[index]
        if operand.get("value"):  # a constant outside the vocabulary: only references carry one
            return parse_value(operand["value"])
        raise DagError(f"constant {index} is not in the vocabulary ({len(constants)} constants)")
    if kind == "op":
        return values[index]
    raise DagError(f"unknown pointer kind {kind!r}; valid choices: {', '.join(POINTER_KINDS)}")


def execute(ops: list[dict], answer_op: int, quantities: list, constants: list) -> tuple[Fraction, list[Fraction]]:
    """Run the operations in dependency order; returns the answer operation's value and every operation's value
    (in layout order). ``quantities`` are ``(value, char_start, char_end)``; ``constants`` the vocabulary's values.
    A broken pointer, a cycle or an impossible operation (division by zero) is a :class:`DagError`."""
    if not ops:
        raise DagError("no operation to execute")
    if not 0 <= answer_op < len(ops):
        raise DagError(f"answer operation {answer_op} does not exist ({len(ops)} operations)")
    constants = [parse_value(c) for c in constants]
    values: dict[int, Fraction] = {}
    for i in dependency_order(ops):
        args = [operand_value(o, quantities, constants, values) for o in ops[i]["operands"]]
        low, high = ARITY.get(ops[i]["op"], (1, MAX_OPERANDS))
        if not low <= len(args) <= high:
            raise DagError(f"{ops[i]['op']} takes {low}..{high} operands, got {len(args)}")
        try:
            values[i] = execute_op(ops[i]["op"], args)
        except (ParseError, ZeroDivisionError, ValueError, OverflowError) as exc:
            raise DagError(f"operation {i} ({ops[i]['op']}): {exc}") from exc
    return values[answer_op], [values[i] for i in range(len(ops))]
