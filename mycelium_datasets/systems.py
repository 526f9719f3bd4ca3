"""Systems of two linear equations in two unknowns, for op parsing's tier 2 (``y = x + 140`` and ``y + x = 198``).

Both equations are read with our own parser (:func:`~mycelium_datasets.arith.parse_expression`; no text is ever
evaluated) into ``a*u + b*v = c``, and solved exactly with Cramer's rule: the ``solve2`` operation takes the six
coefficients ``a1, b1, c1, a2, b2, c2`` and gives ``u``; ``v`` is ``solve2`` with each equation's first two swapped.
It lives here, beside :func:`execute_op` (what executes every operation of a DAG), so that the arithmetic every
artifact reads stays as it was.
"""

from __future__ import annotations

from fractions import Fraction

from .arith import ParseError, apply, parse_expression, polynomial_form, unknowns, values_equal


def solve2(values: list):
    """``solve2(a1, b1, c1, a2, b2, c2)``: the unknown ``u`` of ``a1*u + b1*v = c1``, ``a2*u + b2*v = c2``, rational
    or symbolic; a ParseError when the two equations are not independent."""
    if len(values) != 6:
        raise ParseError(f"solve2 takes 6 operands, got {len(values)}")
    a1, b1, c1, a2, b2, c2 = values
    determinant = apply("sub", [apply("mul", [a1, b2]), apply("mul", [a2, b1])])
    if values_equal(determinant, Fraction(0)):
        raise ParseError("the two equations are not independent: no single solution")
    return apply("div", [apply("sub", [apply("mul", [c1, b2]), apply("mul", [c2, b1])]), determinant])


def execute_op(op: str, values: list):
    """One operation of a DAG on exact values: :func:`~mycelium_datasets.arith.apply`, and ``solve2``."""
    return solve2(values) if op == "solve2" else apply(op, values)


def _linear_in(side: str, names: list[str], variables: dict) -> tuple:
    """``(a, b, k)`` with ``side == a*u + b*v + k``: the side parsed with one unknown at a time (the other 0, then 1
    to find a product of the two); anything not linear in both is a ParseError."""
    u, v = names
    forms = []
    for scope in ({u: None, v: Fraction(0)}, {u: None, v: Fraction(1)}, {u: Fraction(0), v: None}):
        form = polynomial_form(parse_expression(side, latex=True, variables={**variables, **scope}))
        if len(form) > 2:
            raise ParseError("not linear in the unknowns")
        forms.append([*form, Fraction(0)][:2])
    (k, a), (_, a_at_1), (_, b) = forms
    if not values_equal(a, a_at_1):
        raise ParseError("a product of the unknowns is not linear")
    return a, b, k


def linear_equation(left: str, right: str, variables: dict | None = None) -> tuple[tuple[str, str], list]:
    """``left = right`` (LaTeX) in exactly two unknown letters, both sides linear: ``((u, v), [a, b, c])`` with
    ``a*u + b*v = c``, ``u`` and ``v`` in alphabetical order; anything else is a ParseError."""
    variables = variables or {}
    names = sorted(unknowns(left, variables) | unknowns(right, variables))
    if len(names) != 2:
        raise ParseError(f"{len(names)} unknowns, not two")
    (a_left, b_left, k_left), (a_right, b_right, k_right) = (_linear_in(s, names, variables) for s in (left, right))
    a, b = apply("sub", [a_left, a_right]), apply("sub", [b_left, b_right])
    if values_equal(a, Fraction(0)) or values_equal(b, Fraction(0)):
        raise ParseError("an unknown cancels: not an equation in two unknowns")
    return (names[0], names[1]), [a, b, apply("sub", [k_right, k_left])]


def solve_system(first: list, second: list) -> tuple:
    """The two unknowns ``(u, v)`` of ``first`` and ``second``, each ``[a, b, c]`` for ``a*u + b*v = c``
    (:func:`linear_equation`); a ParseError when they are not independent."""
    (a1, b1, c1), (a2, b2, c2) = first, second
    return solve2([a1, b1, c1, a2, b2, c2]), solve2([b1, a1, c1, b2, a2, c2])
