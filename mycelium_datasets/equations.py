"""Reading equations out of a chain of thought: where a CoT writes arithmetic, and what it writes.

Two readers, both returning text for :mod:`mycelium_datasets.arith` to parse (nothing here is evaluated):

- :func:`plain_equations`: ``expr = result`` in plain text as GSM8K writes it (``16 - 3 - 4 = 9``, ``48/2 = 24``,
  ``$1,200 * 20% = $240``, ``12 x 2``, chained ``a = b = c``); unit words inside an equation are dropped and number
  words used as operands become digits (``half * 188`` is ``(1/2) * 188``).
- :func:`latex_statements`: every relation in LaTeX math (``$...$``, ``\\[...\\]``, display environments), display
  rows split at ``\\\\`` with continued chains (``a &= b \\\\ &= c``) joined, assignments (``x = 5``) named and the
  boxed answer marked.

The operation graph built from these (provenance, execution, validation) is :mod:`mycelium_datasets.op_graph`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .arith import GREEK, variable_name
from .numbers import DECIMALS, GROUPED_INT, number_word_value

_ARITH_CHARS = re.compile(r"[\d\s.,+\-−*/×÷^%()$€£x√]")
_UNIT_IN_EQUATION = re.compile(
    r"(?<=[\d%)])(?:[A-Za-z]{1,3}[²³]|(?<=\d)(?!x[a-z]?\b)[A-Za-z]{2,3}\b|\s*/\s*(?!x\b)[A-Za-z]+(?:-[A-Za-z]+)*[²³]?"
    r"|\s+(?!x\b)[A-Za-z'’]+(?:-[A-Za-z]+)*[²³]?){1,10}(?=\s*(?:[-+*/×÷=–]|x\s))"
)
_BULLET = re.compile(r"(?m)^[ \t]*(?:[-*•]|\d+[.)])[ \t]+")
# a written result: a sign, a currency sign, a fraction bar or a percent around a number (see ``numbers``)
_RESULT = re.compile(rf"\s*[$€£]?\s*(-?{GROUPED_INT}{DECIMALS}|-?\d+{DECIMALS}(?:/\d+)?|-?\.\d+)\s*(%?)")
# same-length rewrites of what GSM8K writes between numbers: an en dash or a minus sign for "-", a capital X for
# "x" (times), a currency sign after a number ("35€ X 3€/game") for a space
_PLAIN_MINUS = re.compile(r"(?<=[\d\s%)])[–−](?=\s*[$€£(]?\s*\.?\d)")
_PLAIN_TIMES = re.compile(r"(?<=[\d%)])(\s*)X(?=\s*[$€£(]?\.?\d)")
_CURRENCY_AFTER = re.compile(r"(?<=\d)[€£$](?!\d)")
# "500(.40)=200" is a product; "√(144) = 12" a square root ("√144" too, inside arithmetic: "√144 + 1 = 13")
_PLAIN_PRODUCT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\((?=\s*\.?\d)")
_PLAIN_ROOT = re.compile(r"√\s*(\([^()]*\)|[\d.]+)")


def _left_expression(text: str, end: int) -> tuple[str, int]:
    """The arithmetic run that ends at ``text[end]`` (an ``=``), scanning left; ``x`` only between numbers."""
    i = end
    while i > 0 and _ARITH_CHARS.match(text[i - 1]):
        if text[i - 1] == "x" and (i - 2 < 0 or not (text[i - 2].isspace() or text[i - 2].isdigit())):
            break
        i -= 1
    run = text[i:end]
    # drop a leading word-fragment of punctuation / an unmatched ")" or a trailing list comma; not the point of ".4"
    stripped = re.sub(r"^(?:[ ,)]|\.(?!\d))+", "", run)
    return stripped.strip(), end - len(run) + (len(run) - len(stripped))


_EQUATION_WORD = re.compile(
    r"\b(half|twice|double|triple|dozen|quarter|third|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
    r"(?=\s*[*×x/+=-]\s*[$€£(]?\d)|(?<=[*×/+-])(\s*)(half|twice|double|dozen|quarter|third)\b",
    re.IGNORECASE,
)


# a step that writes its arithmetic in words ("14 plus 8 equals 22", "112 divided by 14 equals 8"): the words between
# two numbers (a number word, or a number and its unit words on the left) are the signs
_OPERATOR_WORDS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
# a number or a number word next (op_graph._NUMBER_AHEAD takes digits only)
_OPERAND_AHEAD = r"(?=\s*[$€£]?\s*(?:\.?\d|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b))"
_OPERATOR_WORD = re.compile(rf"\s+(plus|minus|times|multiplied by|divided by)\s+{_OPERAND_AHEAD}", re.IGNORECASE)
# "equals": right after a number ("100-72 equals 28"), or anywhere in a text that writes an operation in words; not
# "2/3 of the tank equals 16", nor "4/7 is equal to $24"
_EQUALS_WORD = re.compile(rf"\s+equals\s+{_OPERAND_AHEAD}", re.IGNORECASE)
_EQUALS_AFTER_NUMBER = re.compile(rf"(?<=[\d)%])\s+equals\s+{_OPERAND_AHEAD}", re.IGNORECASE)
_IS_WORD = re.compile(r"(?<=\d)\s+(?:is|are|makes)\s+(?=[$€£]?\s*\.?\d)", re.IGNORECASE)


def _operator_words(text: str) -> str:
    """Arithmetic written in words becomes signs, only between numbers: "14 plus 8 equals 22" -> "14 + 8 = 22",
    "32 - 24 equals 8"; in a text that writes an operation in words, a number followed by "is" / "are" / "makes" and
    a number is an equation too ("48 divided by 4 is 12")."""
    if not _OPERATOR_WORD.search(text):
        return _EQUALS_AFTER_NUMBER.sub(" = ", text)  # "32 - 24 equals 8"
    text = _OPERATOR_WORD.sub(lambda m: f" {_OPERATOR_WORDS[m.group(1).lower()]} ", text)
    return _IS_WORD.sub(" = ", _EQUALS_WORD.sub(" = ", text))


def _number_words_in_equations(text: str) -> str:
    """Number words used as operands ("half * 188 = 94") become digits; elsewhere they stay words."""

    def digits(word: str) -> str:
        value = number_word_value(word)
        return str(value.numerator) if value.denominator == 1 else f"({value.numerator}/{value.denominator})"

    def replace(m: re.Match) -> str:
        if m.group(1):
            return digits(m.group(1))
        return m.group(2) + digits(m.group(3))

    return _EQUATION_WORD.sub(replace, text)


def glued_units(trace: str) -> frozenset[str]:
    """Letters that a whole trace writes only against a number, at least twice: units ("400g ... = 50g", "40A"), not
    unknowns ("Let b be ...; 2b - 5 = 3b - 15" also writes b alone). Never ``x`` (a times sign between numbers)."""
    units = set()
    for letter in {m.group(0) for m in re.finditer(r"(?<=\d)[A-Za-wyzA-WYZ](?![A-Za-z'’])", trace)}:
        uses = [m.start() for m in re.finditer(rf"(?<![A-Za-z'’]){letter}(?![A-Za-z'’])", trace)]
        if len(uses) >= 2 and all(i > 0 and trace[i - 1].isdigit() for i in uses):
            units.add(letter)
    return frozenset(units)


def plain_equations(text: str, units: frozenset[str] = frozenset()) -> list[tuple[str, str, int]]:
    """``(expression, written_result, position)`` for each ``expr = result`` in plain text (chained ``=`` included:
    ``a = b = c`` gives ``a`` with result ``c`` when ``b`` is a number). ``units``: letters written against numbers
    that are units (:func:`glued_units`), dropped."""
    if units:
        text = re.sub(rf"(?<=\d)[{''.join(sorted(units))}](?![A-Za-z'’])", "", text)
    # unit words inside an equation ("€57/hour * 7 hours = €399", "5 feet x 3 = ") are not part of it
    text = _PLAIN_TIMES.sub(r"\1x", _PLAIN_MINUS.sub("-", _CURRENCY_AFTER.sub(" ", text)))
    text = _PLAIN_PRODUCT.sub(r"\1*(", text)
    text = _UNIT_IN_EQUATION.sub("", _number_words_in_equations(_operator_words(_BULLET.sub("", text))))
    equations = []
    for m in re.finditer(r"=", text):
        expression, start = _left_expression(text, m.start())
        if not re.search(r"\d\s*[-+*/×÷x^%]\s*[$€£(]?\s*\.?\d|\d\s*%|\(\s*\d", expression):
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
            expression = re.sub(r"(?<=[\d)])\s*x\s*(?=\.?[\d$(])", " * ", expression)
            expression = _PLAIN_ROOT.sub(r"sqrt(\1)", expression)
            equations.append((expression, result, start))
    return equations


# "2x+140=198", "160x = 24000", "2*x = 50 - 10": an equation in one letter written in plain text (no LaTeX)
_PLAIN_ALGEBRA = re.compile(
    r"(?<![\w.$])((?:\d+(?:\.\d+)?\*?)?[a-zA-Z](?![a-zA-Z])(?:\s*[-+*/]\s*\d+(?:\.\d+)?(?![\d.]*[a-zA-Z])"
    r"|\s*[-+]\s*(?:\d+\*?)?[a-zA-Z](?![a-zA-Z]))*)"
    r"\s*=\s*([$€£]?\d+(?:\.\d+)?(?:\s*[-+*/]\s*[$€£]?\d+(?:\.\d+)?)*)(?!\w|\.\d|\s*[-+*/×^(]\s*[\w($€£(])"
)


def plain_algebra(text: str) -> list[tuple[str, str, int]]:
    """``(left, right, position)`` of each equation in one letter written in plain text: a coefficient written
    against the letter (``2x``, ``5*x``), plus or minus numbers, equal to arithmetic (``2x+140=198``); not a bare
    ``x = 29`` (an assignment), not the middle of a longer expression (``4*3 +6*Y =42`` is left whole to the
    parser), not a unit (``200 m + 200 m = 400 m``: a letter after a space, or after the result, is a unit). Only
    for :mod:`op_graph`'s tier 2 on plain traces."""
    found, ends = [], set()
    for m in _PLAIN_ALGEBRA.finditer(text):
        left = m.group(1).strip()
        letters = set(re.findall(r"[a-zA-Z]", left))
        if len(letters) != 1 or re.fullmatch(r"[a-zA-Z]", left):
            continue
        before = text[: m.start()].rstrip()
        if before and before[-1] in "+-*/×(=" or re.match(rf"\s*{next(iter(letters))}\b", text[m.end() :]):
            continue
        found.append((left, m.group(2).strip(), m.start()))
        ends.add(m.end())
    return sorted(found + _two_sided_algebra(text, ends), key=lambda f: f[2])


_ALGEBRA_CHARS = frozenset("0123456789.$€£+-–−*/() ")


def _alone(text: str, i: int) -> bool:
    """Whether ``text[i]`` is a letter standing alone (an unknown), not part of a word ("x", not the "s" of "'s")."""
    word = lambda j: 0 <= j < len(text) and (text[j].isalpha() or text[j] in "'’")  # noqa: E731
    return text[i].isascii() and text[i].isalpha() and not word(i - 1) and not word(i + 1)


def _algebra_around_equals(text: str):
    """``(start, equals, end, left, right, letters)`` for each ``=`` of plain text: the arithmetic runs either side of
    it, stopped at a word, a line end, another ``=`` or a full stop; ``letters``: the letters standing alone in it."""
    for eq in re.finditer(r"=", text):
        a = eq.start()
        while a > 0 and (text[a - 1] in _ALGEBRA_CHARS or _alone(text, a - 1)):
            a -= 1
        b = eq.end()
        while b < len(text) and (text[b] in _ALGEBRA_CHARS or _alone(text, b)):
            if text[b] == "." and not (b + 1 < len(text) and text[b + 1].isdigit()):
                break
            b += 1
        left, right = (re.sub("[–−]", "-", side).strip() for side in (text[a : eq.start()], text[eq.end() : b]))
        if left and right and re.search(r"\d", left + right):
            sides = ((a, eq.start()), (eq.end(), b))
            letters = ({c for i, c in enumerate(text[x:y], x) if _alone(text, i)} for x, y in sides)
            start = a + len(text[a : eq.start()]) - len(text[a : eq.start()].lstrip())
            yield start, eq.start(), b, left, right, *letters


def _a_unit(letter: str, equation: str) -> bool:
    """``200 m``: a letter after a number and a space; ``200m + 200m = 400m``: after every number (of two or more:
    ``j = 2b`` is a coefficient)."""
    numbers = re.findall(rf"\d+(?:\.\d+)?(\s*{letter})?", equation)
    return bool(re.search(rf"\d\s+{letter}", equation)) or len(numbers) > 1 and all(numbers)


def _two_sided_algebra(text: str, taken: set[int]) -> list[tuple[str, str, int]]:
    """Equations in one letter with the letter on the right, or on both sides (``7 + x = 2 * x``,
    ``2p/5 = (p+$600)/4``, ``3 = 1+ F``). Not a bare assignment either way round (``x = 29``, ``29 = x``), not a unit
    (:func:`_a_unit`; ``500 - 240 = 260g``: after the result of arithmetic), not an equation already read (``taken``:
    ends of :data:`_PLAIN_ALGEBRA` matches)."""
    found = []
    for start, equals, end, left, right, letters_left, letters_right in _algebra_around_equals(text):
        if any(t in taken for t in range(equals, end + 1)) or len(letters_left | letters_right) != 1:
            continue
        if not letters_right or left in letters_right or right in letters_right:
            continue
        letter = next(iter(letters_right))
        if _a_unit(letter, text[start:end]):
            continue
        if not letters_left and re.search(r"[-+*/]", left) and re.fullmatch(rf"[$€£]?[\d.]+{letter}", right):
            continue  # a result and its unit: "500 - 240 = 260g"
        found.append((left, right, start))
    return found


def plain_systems(text: str) -> list[tuple[str, str, int]]:
    """``(left, right, position)`` of each plain-text equation in exactly two letters (``y = x + 140``,
    ``j - 5 = 3(b - 5)``), none of them a unit (:func:`_a_unit`): a system's equations, paired by :mod:`op_graph`."""
    found = []
    for start, _, end, left, right, letters_left, letters_right in _algebra_around_equals(text):
        letters = letters_left | letters_right
        if len(letters) == 2 and not any(_a_unit(letter, text[start:end]) for letter in letters):
            found.append((left, right, start))
    return found


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
_EQUALS = re.compile(r"(?<![<>\\])(?<![^\d)]!)=")  # "5!=120" is a factorial, then "="; "a != b" is not "="
_RELATION = re.compile(
    r"(?<![<>\\])(?<![^\d)]!)=|\\(?:le|ge|leq|geq|ne|neq|approx|equiv|lt|gt|sim|cong|in|subset)(?![A-Za-z])|[<>]"
)
ARITHMETIC = re.compile(r"[-+*/^!|]|\\(?:frac|[dt]frac|times|cdot|sqrt|div|binom|choose|lfloor|lceil)|\d\s*\(|\)\s*\(")
_NAME = re.compile(rf"^\s*([A-Za-z](?:_\{{?\w{{1,4}}\}}?)?|\\(?:{'|'.join(GREEK)}))\s*$")
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
    parts = [p.strip() for p in re.split(_EQUALS, text[cut:] if cut else text)]
    if len(parts) < 2 or not parts[-1]:
        return
    statement = Statement(
        parts=parts, position=position + cut, written=parts[-1], boxed=bool(_BOXED.search(parts[-1]))
    )
    name = _NAME.match(parts[0]) if not cut else None
    if name:
        statement.name = variable_name(name.group(1))
    for part in parts[:-1]:
        if re.search(r"\d", part) and ARITHMETIC.search(part):
            statement.expression = part
            break
    statements.append(statement)
