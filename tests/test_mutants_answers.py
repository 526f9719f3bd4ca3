"""Answer equivalence as the verification worker decides it, called in this process (the worker only adds a time
limit around these two functions), so that a wrong rule shows here rather than hiding in another process."""

from __future__ import annotations

import pytest
import sympy

from mycelium_datasets.answers import (
    Verdict,
    _strict_numeric_equal,
    _verify_in_process,
    answers_match,
    extract_answer,
    extract_boxed,
    normalize_gold,
)


def test_strict_numeric_equality_of_two_numbers():
    assert _strict_numeric_equal(sympy.Rational(1, 2), sympy.Float(0.5)) is True
    # equal to 12 significant digits is equal (a float printed in full); one part in a thousand is not
    assert _strict_numeric_equal(sympy.Integer(10**12), sympy.Integer(10**12 + 1)) is True
    assert _strict_numeric_equal(sympy.Integer(1000), sympy.Integer(1001)) is False
    assert _strict_numeric_equal(sympy.Integer(-3), sympy.Integer(3)) is False
    # math-verify's rounding calls these equal; 50 digits do not
    assert _strict_numeric_equal(1 / sympy.factorial(2004), 1 / sympy.factorial(2006)) is False


@pytest.mark.parametrize(
    "a, b",
    [
        (sympy.Symbol("x"), sympy.Integer(1)),
        (sympy.Integer(1), sympy.Symbol("x") + 1),
        (1, sympy.Integer(1)),  # not a sympy expression: no verdict
        (sympy.Integer(1), 1),
        (sympy.I, sympy.I),  # complex: no order to compare within
        (sympy.Integer(2), sympy.I),
        (sympy.I, sympy.Integer(2)),
        (sympy.FiniteSet(1, 2), sympy.Integer(1)),  # a set: no symbols, and not a number
        (sympy.Integer(1), sympy.FiniteSet(1, 2)),
    ],
)
def test_strict_numeric_gives_no_verdict_unless_both_are_real_numbers(a, b):
    assert _strict_numeric_equal(a, b) is None


@pytest.mark.parametrize(
    "pred, gold, verdict",
    [
        ("\\frac{1}{2}", "0.5", (True, "math_verify")),
        ("$\\frac{1}{2}$", "\\(0.5\\)", (True, "math_verify")),  # already in math mode: not wrapped again
        ("\\[3\\]", "3", (True, "math_verify")),
        ("x+1", "1+x", (True, "math_verify")),
        ("x+1", "x+2", (False, "math_verify")),
        ("\\frac{1}{2004!}", "\\frac{1}{2006!}", (False, "strict_numeric")),  # math-verify overruled
        ("}{", "3", (False, "math_verify")),  # nothing parsed on one side: not a match
        ("3", "}{", (False, "math_verify")),
        ("\\text{}", "3", (False, "math_verify")),  # math-verify reads nothing at all on one side
        ("3", "$$", (False, "math_verify")),
    ],
)
def test_verification_verdicts(pred, gold, verdict):
    assert _verify_in_process(pred, gold) == verdict


@pytest.mark.parametrize(
    "text, boxed",
    [
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces are text, not grouping
        (r"\boxed{\{1}", r"\{1"),
        (r"\boxed{a\}", None),  # an escaped brace does not close the box
        ("\\boxed{1} \\", "1"),  # a backslash at the very end
        (r"\boxed{3} and {x}", "3"),  # a later group that is not a box is not the answer
        (r"\fbox{2} then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    ],
)
def test_extract_boxed_with_escaped_and_plain_braces(text, boxed):
    assert extract_boxed(text) == boxed


def test_extract_answer_edge_cases():
    assert extract_answer(None) == (None, "none")
    assert extract_answer(42) == (None, "none")
    # an empty last phrase falls back to the one before it, still a phrase
    assert extract_answer("The answer is 5.\nThe answer is") == ("5", "phrase")
    # a LaTeX command (any case) keeps the phrase as written instead of taking its first number
    assert extract_answer("The answer is 3\\Omega.") == ("3\\Omega", "phrase")
    assert extract_answer("The answer is 18 dollars.") == ("18", "phrase")


@pytest.mark.parametrize(
    "raw, expected",
    [
        (7, ("7", "ok")),  # a JSON number is read as written
        (2.5, ("2.5", "ok")),
        (float("nan"), (None, "unparseable_answer")),  # JSON readers accept NaN and Infinity: not an answer
        (float("-inf"), (None, "unparseable_answer")),
        (True, (None, "unparseable_answer")),  # a boolean is an int to Python, not an answer
        (["7"], (None, "unparseable_answer")),
        ({"answer": 7}, (None, "unparseable_answer")),
        ("   ", (None, "missing_answer")),
        ("7" + " " * 199_999, ("7", "ok")),  # 200,000 characters: still read
        ("7" + " " * 200_000, (None, "unparseable_answer")),  # longer: refused before any regex sees it
    ],
)
def test_normalize_gold_of_values_a_dataset_may_hold(raw, expected):
    assert normalize_gold(raw) == expected


def test_normalize_gold_refuses_an_unknown_shape():
    assert normalize_gold("#### 5", "gsm8k") == ("5", "ok")
    with pytest.raises(ValueError, match="GSM8K"):  # a typo must not read a GSM8K answer as a plain string
        normalize_gold("#### 5", "GSM8K")


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("-\\frac{3}{4}", "-0.75"),  # a signed LaTeX fraction keeps its sign
        ("\\frac{3}{4}", "0.75"),
        ("3/4", "0.75"),
        ("$3/4$", "0.75"),  # dollars around a fraction are math mode, not currency
        ("1 234", "1234"),
    ],
)
def test_plain_fractions_are_decided_exactly_in_this_process(pred, gold):
    assert answers_match(pred, gold) == Verdict(True, "exact")


@pytest.mark.parametrize(
    "pred, gold, verdict",
    [
        (None, "3", (False, "missing")),  # no prediction against a real gold: wrong, and said why
        ("", "3", (False, "missing")),
        ("  ", "3", (False, "missing")),
        ("3", None, (None, "missing")),  # no gold: not scored
        ("None", "None", (True, "identical")),  # the text "None" is an answer like any other
    ],
)
def test_a_missing_prediction_or_gold_is_decided_before_any_comparison(pred, gold, verdict):
    assert answers_match(pred, gold) == Verdict(*verdict)


def test_a_blank_gold_is_missing_too():
    assert answers_match("3", "  ").method == "missing"  # never compared with the prediction


def test_a_forgotten_worker_starts_its_own_and_does_not_wait_for_the_parent_s_lock():
    """What a process forked from one with a running verification worker does (answers registers forget at fork):
    the parent's worker and lock are the parent's; this one starts its own worker on first use."""
    from mycelium_datasets.answers import _VerifyWorker

    worker = _VerifyWorker()
    parents = None
    try:
        assert worker.run(r"\sqrt{9}", "3", 60)[0] is True
        parents, pipe = worker._proc, worker._conn  # still the parent's (its process keeps them)
        worker._lock.acquire()  # held by another thread of the parent at the moment it forked
        worker.forget()
        assert worker.run(r"\sqrt{16}", "4", 60)[0] is True  # no deadlock on the parent's lock
        assert worker._proc is not parents and worker._proc.is_alive() and parents.is_alive()
        pipe.send((r"\sqrt{25}", "5"))  # and the parent's still answers the parent
        assert pipe.poll(60) and pipe.recv()[0] is True
    finally:
        worker.close()
        if parents is not None:
            parents.kill()
            parents.join(5)


def test_answers_longer_than_the_limit_are_not_compared_and_the_limit_itself_is_fine():
    from mycelium_datasets.answers import MAX_ANSWER_CHARS

    longest, longer = "1" * MAX_ANSWER_CHARS, "1" * (MAX_ANSWER_CHARS + 1)
    assert answers_match(longest, longest) == Verdict(True, "identical")
    assert answers_match(longer, "1") == Verdict(None, "too_long")
    assert answers_match("1", longer) == Verdict(None, "too_long")


def test_a_plain_number_against_an_expression_goes_to_math_verify():
    assert answers_match("3", r"\sqrt{9}") == Verdict(True, "math_verify")  # not decided as plain numbers
