"""A reference CoT written from a source's equation: MAWPS (``x=25000.0-(1500.0*8.0)``), ASDiv (``7+2=9``).

Equation-annotated sets give no chain of thought, only the expression that answers the problem. The pipeline
reads a reference CoT (teacher-forced, cut into spans, located in the problem), so :func:`solution_from_equation`
writes one, step by step in GSM8K's plain shape: each operation of the expression, innermost first, as
``a op b = result`` on its own line (an n-ary chain ``a + b + c`` one step at a time), then ``#### answer``::

    >>> print(solution_from_equation("x=25000.0-(1500.0*8.0)"))
    1500 * 8 = 12000
    25000 - 12000 = 13000
    #### 13000

The expression is parsed by :func:`mycelium_datasets.arith.parse_expression` (nothing is evaluated). An equation
this cannot write (the unknown on both sides, ``;`` chains, comparisons, remainders, operations other than the four)
gives ``None``: the row keeps no solution and the teacher writes its own.
"""

from __future__ import annotations

import re

from .arith import ParseError, apply, format_value, parse_expression

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_UNKNOWN = re.compile(r"^\s*[xX]\s*=\s*(.+)$")  # MAWPS: x=EXPR
_RESULT = re.compile(r"^(.+?)=\s*-?[\d.,/]+\s*$")  # ASDiv: EXPR=RESULT
MAX_EQUATION = 500  # characters; longer is not an elementary word problem's equation


def _expression(equation: str) -> str | None:
    """The expression side of ``equation``, or None when it is not ``x=EXPR`` / ``EXPR=number``."""
    equation = equation.strip()
    if not equation or len(equation) > MAX_EQUATION or ";" in equation or equation.count("=") != 1:
        return None
    match = _UNKNOWN.match(equation)
    if match:
        return match.group(1) if not re.search(r"[A-Za-z]", match.group(1)) else None
    match = _RESULT.match(equation)
    if match and not re.search(r"[A-Za-z]", match.group(1)):
        return match.group(1)
    return None


def solution_from_equation(equation) -> str | None:
    """The step-by-step reference CoT of ``equation`` (see the module docstring), or None when it cannot be
    written (not a string, not one expression, an operation other than + - * /, a division by zero)."""
    if not isinstance(equation, str):
        return None
    text = _expression(equation)
    if text is None:
        return None
    try:
        tree = parse_expression(text)
    except (ParseError, ValueError, ArithmeticError):
        return None
    lines: list[str] = []

    def write(node):
        if node.op == "num":
            return node.value
        if node.op not in _SYMBOLS:
            raise ParseError(f"{node.op} is not a step")
        values = [write(arg) for arg in node.args]
        result = values[0]
        for value in values[1:]:
            step = apply(node.op, [result, value])
            lines.append(f"{format_value(result)} {_SYMBOLS[node.op]} {format_value(value)} = {format_value(step)}")
            result = step
        return result

    try:
        answer = write(tree)
    except (ParseError, ValueError, ArithmeticError):
        return None
    if not lines:  # x=5: nothing to compute
        return None
    return "\n".join([*lines, f"#### {format_value(answer)}"])
