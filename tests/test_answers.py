"""Answer extraction and equivalence, including every answer-extraction case of the field guide's Bug Hall of Fame."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mycelium_datasets.answers import (
    ANSWER_SOURCES,
    answers_match,
    extract_answer,
    extract_boxed,
    normalize_gold,
    normalize_number_text,
)


# --- Bug Hall of Fame: "\boxed{} regex not matching" (nested braces, the last box, spacing, \fbox) ---------------
@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{ \dfrac{\sqrt{3}}{2} }", r"\dfrac{\sqrt{3}}{2}"),
        (r"first \boxed{3} then corrected: \boxed{4}", "4"),
        (r"\boxed {12}", "12"),
        (r"\fbox{7}", "7"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{x^{2^{3}}}", "x^{2^{3}}"),
        (r"no box here", None),
        (r"unclosed \boxed{5", None),
        (r"\boxed{1} and unclosed \boxed{2", "1"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_boxed_is_highest_priority_and_can_be_switched_off():
    # Bug Hall of Fame: "\boxed{} extraction masking real eval" — honest evaluation turns boxed reading off.
    cot = "Step: 2 + 3 = 5.\n#### 5\nThe answer is 6.\n\\boxed{7}"
    assert extract_answer(cot) == ("7", "boxed")
    assert extract_answer(cot, allow_boxed=False) == ("5", "hash")


@pytest.mark.parametrize(
    "cot, answer, source",
    [
        ("48/2 = 24 clips in May.\n48 + 24 = 72\n#### 72", "72", "hash"),
        ("Total is $1,234.\n#### $1,234", "1234", "hash"),
        ("So she has 18 apples. The answer is 18.", "18", "phrase"),
        ("The answer is $18 dollars.", "18", "phrase"),
        ("Final answer: \\frac{3}{4}", "\\frac{3}{4}", "phrase"),
        ("The final answer is 2.5.", "2.5", "phrase"),
        ("She gets 3 + 4 = 7 and then 7 * 2 = 14", "14", "last_number"),
        ("A negative result: -12", "-12", "last_number"),
        ("no digits at all", None, "none"),
        ("", None, "none"),
    ],
)
def test_extract_answer_priority(cot, answer, source):
    assert extract_answer(cot) == (answer, source)
    assert source in ANSWER_SOURCES


def test_truncated_cot_has_no_phrase_answer():
    # Bug Hall of Fame: "max_new_tokens=512 truncation" — a cut CoT falls back to the last number; the trace records
    # finish_reason=length (tested in test_cot_traces) so it is never silently scored as a plain wrong answer.
    assert extract_answer("First, 12 * 3 = 36. Then we add 4") == ("4", "last_number")


@pytest.mark.parametrize(
    "raw, shape, expected",
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "gsm8k", ("72", "ok")),
        ("...\n#### 1,234", "gsm8k", ("1234", "ok")),
        ("no final line", "gsm8k", (None, "unparseable_answer")),
        (r"so it is $\boxed{\frac{a}{\sqrt{b}}}$ and first \boxed{1}", "math", ("1", "ok")),
        (r"The area is \boxed{\frac{\pi}{4}}.", "math", (r"\frac{\pi}{4}", "ok")),
        (r"unclosed \boxed{3", "math", (None, "unparseable_answer")),
        ("", "plain", (None, "missing_answer")),
        (None, "plain", (None, "missing_answer")),
        (42, "plain", ("42", "ok")),
        ("$1,000", "plain", ("1000", "ok")),
        (r"\text{Evelyn}", "plain", (r"\text{Evelyn}", "ok")),
    ],
)
def test_normalize_gold(raw, shape, expected):
    assert normalize_gold(raw, shape) == expected


def test_normalize_number_text():
    assert normalize_number_text("$1,234.50") == "1234.50"
    assert normalize_number_text("−3") == "-3"
    assert normalize_number_text("x + 1") == "x + 1"
    assert normalize_number_text(r"\$32,\!348") == "32348"  # MATH writes thousands with LaTeX spacing
    assert normalize_number_text(r"1\,000") == "1000"


@pytest.mark.parametrize(
    "pred, gold, match",
    [
        ("1234", "1,234", True),
        ("0.5", "1/2", True),
        ("0.5", r"\frac{1}{2}", True),
        ("72", "72.0", True),
        ("500", "5", False),
        ("500", r"5\%", False),  # no percent rescaling
        (r"\frac{1}{2004!}", r"\frac{1}{2006!}", False),  # math-verify alone says True (rounding)
        (r"\frac{1}{2004!}", r"\frac{1}{2004!}", True),
        ("3", "3.0000001", False),
        (r"\sqrt{8}", r"2\sqrt{2}", True),
        ("Evelyn", r"\text{Evelyn}", True),
        ("(1,2]", "(1,2]", True),
        (None, "3", False),
        (r"\$32,\!348", r"\$32,\!348", True),  # math-verify alone says False
        ("32348", r"\$32,\!348", True),
    ],
)
def test_answers_match(pred, gold, match):
    assert answers_match(pred, gold).match is match


def test_missing_gold_gives_no_verdict():
    assert answers_match("3", None).match is None


def test_verification_time_limit_works_off_the_main_thread():
    bomb = r"9^{9^{9^{9}}}"
    results = {}

    def check():
        started = time.monotonic()
        results["verdict"] = answers_match(bomb, r"10^{10^{10}}", timeout=1.0)
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=check)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "verification hung"
    verdict = results["verdict"]
    # Either the worker finishes quickly with a verdict or it is stopped at the limit and says so.
    assert verdict.method in {"timeout", "math_verify", "strict_numeric"} or verdict.method.startswith("error")
    assert verdict.match is not True
    # and the worker is usable again afterwards
    assert answers_match("2/4", r"\frac{1}{2}").match is True


def test_huge_plain_numbers_are_not_parsed_as_numbers():
    assert answers_match("9" * 5000, "9" * 5000).method in {"too_long", "math_verify", "timeout"}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\\boxed{}fbx0123456789 .,$#-/\n")), max_size=60))
def test_extraction_never_raises(text):
    answer, source = extract_answer(text)
    assert source in ANSWER_SOURCES
    assert (answer is None) == (source == "none")
    boxed = extract_boxed(text)
    assert boxed is None or isinstance(boxed, str)
