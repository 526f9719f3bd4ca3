"""What a number written in text is: one definition for the artifacts, the solver and the evaluation.

A *quantity* is a number a reader can see in a problem: digits (``12``, ``3.5``, ``.5``, ``1,200``; a zero-width
character copied into a number does not split it), a percent (``80%``, ``80 percent``: read both as 80 and as 0.8,
at the same offsets), and number words (*three*, *twice*, *half*, *a dozen*, *quarter*; a fraction word also as its
denominator: *a fourth* is 1/4 and 4). :func:`problem_numbers`
finds them all with their character offsets; ``op_pairs`` links CoT operands to them, the student sets point at
them, and the solver binds operations to them.

The regular-expression pieces below are shared by every pattern that reads a number out of text: answers in a CoT
(:mod:`mycelium_datasets.answers`, which adds a sign and a currency sign), written results of equations
(:mod:`mycelium_datasets.equations`, which adds a sign, a fraction bar and a percent), and equation extents for the
segmenter (:mod:`mycelium_datasets.segment`).
"""

from __future__ import annotations

import re
from fractions import Fraction

from .arith import MAX_DIGITS

# Invisible characters that copy-paste leaves inside numbers ("1\u200b2" is 12): zero-width space / non-joiner /
# joiner, word joiner, and the byte-order mark.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"

# Pattern pieces (no groups that capture, no anchors).
GROUPED_INT = r"\d{1,3}(?:,\d{3})+"  # 1,200 and 1,234,567: commas between groups of three
DECIMALS = r"(?:\.\d+)?"  # an optional decimal part
INT_DIGITS = rf"\d(?:[{ZERO_WIDTH}]*\d)*"  # digits, a zero-width character inside not splitting them
NOT_AFTER_WORD = r"(?<![\w.])"  # a number starts a token: not "x2", not the "5" of "0.5"

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
    "fourth": Fraction(1, 4),
    "fourths": Fraction(1, 4),
    "fifth": Fraction(1, 5),
    "fifths": Fraction(1, 5),
    "sixth": Fraction(1, 6),
    "sixths": Fraction(1, 6),
    "eighth": Fraction(1, 8),
    "eighths": Fraction(1, 8),
    "tenth": Fraction(1, 10),
    "tenths": Fraction(1, 10),
    "once": 1,
    "pair": 2,
    "pairs": 2,
}

# A fraction word is read both ways, at the same offsets: "a fourth of the slices" is 1/4, and also the 4 a CoT
# divides by ("16 / 4 = 4"); without the second reading that 4 looked like an implicit constant.
FRACTION_WORDS = {
    word: value.denominator
    for word, value in NUMBER_WORDS.items()
    if isinstance(value, Fraction) and value.numerator == 1 and value.denominator > 1
}

_QUANTITY = re.compile(
    rf"{NOT_AFTER_WORD}{GROUPED_INT}{DECIMALS}|{NOT_AFTER_WORD}{INT_DIGITS}(?:\.{INT_DIGITS})?"
    rf"|{NOT_AFTER_WORD}\.{INT_DIGITS}"
)
_WORD = re.compile(r"[A-Za-z]+")


def number_word_value(word: str) -> Fraction | None:
    """The value of a number word (*half* is 1/2, *dozen* 12), or None when ``word`` is not one."""
    value = NUMBER_WORDS.get(word.lower())
    return None if value is None else Fraction(value)


def is_percent(text: str, end: int) -> bool:
    """Whether the number that ends at ``text[end]`` is a percent (``80%``, ``80 percent``)."""
    return text[end : end + 1] == "%" or text[end : end + 8].lower().startswith(" percent")


def problem_numbers(problem: str) -> list[tuple[Fraction, int, int]]:
    """Every number the problem states, as ``(value, char_start, char_end)``: digits (``1,200``, ``3.5``; ``80%``
    also as ``0.8``, at the same offsets) in text order, then number words in text order (a fraction word such as
    *a fourth* both as 1/4 and as 4)."""
    found = []
    for m in _QUANTITY.finditer(problem):
        digits = re.sub(f"[,{ZERO_WIDTH}]", "", m.group(0))
        if len(digits) > MAX_DIGITS:  # no operation can use it (and int() refuses 4,300+ digits): not a number
            continue
        value = Fraction(digits)
        found.append((value, m.start(), m.end()))
        if is_percent(problem, m.end()):
            found.append((value / 100, m.start(), m.end()))
    for m in _WORD.finditer(problem):
        value = number_word_value(m.group(0))
        if value is not None:
            found.append((value, m.start(), m.end()))
            denominator = FRACTION_WORDS.get(m.group(0).lower())
            if denominator is not None:
                found.append((Fraction(denominator), m.start(), m.end()))
    return found


def quantities(problem: str) -> list[tuple[Fraction, int, int]]:
    """The candidate quantities a solver can point at: :func:`problem_numbers` in text order (a percent's two
    readings next to each other, its number first). Index ``k`` of this list is the quantity pointer ``k``."""
    return sorted(problem_numbers(problem), key=lambda q: q[1])
