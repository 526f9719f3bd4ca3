"""What a number in text is (``mycelium_datasets.numbers``): values, offsets and order, read on small real texts."""

from __future__ import annotations

from fractions import Fraction as F

from mycelium_datasets.arith import MAX_DIGITS
from mycelium_datasets.numbers import is_percent, number_word_value, problem_numbers, quantities


def readings(text: str) -> list[tuple[F, str]]:
    """Each number found, as its value and the text it was read from."""
    return [(value, text[a:b]) for value, a, b in problem_numbers(text)]


def test_digits_in_every_written_form():
    text = "Pay $1,200.50 for 3.5 kg, .5 l and 1\u200b2 eggs; x2 is a name and 0.5 is a single number."
    assert readings(text) == [
        (F("1200.50"), "1,200.50"),
        (F("3.5"), "3.5"),
        (F("0.5"), ".5"),
        (F(12), "1\u200b2"),
        (F("0.5"), "0.5"),
    ]


def test_a_percent_is_read_as_its_number_and_as_a_share_at_the_same_offsets():
    for text in ("Save 80% today", "Save 80 percent today", "Save 80 Percent today"):
        assert readings(text) == [(F(80), "80"), (F(4, 5), "80")], text
    assert readings("Save 80 per cent today") == [(F(80), "80")]
    assert readings("Save 80") == [(F(80), "80")]


def test_is_percent_looks_right_after_the_number():
    assert is_percent("80% off", 2)
    assert is_percent("80 percent off", 2)
    assert is_percent("80 PERCENT", 2)
    assert not is_percent("80 % off", 2)  # a space, then a sign: not how a percent is written
    assert not is_percent("80 pens", 2)
    assert not is_percent("80", 2)
    assert not is_percent("it is 80 percent", 5)  # the word must follow the number, not be somewhere after it


def test_number_words_with_their_values_any_case():
    assert number_word_value("Dozen") == 12
    assert number_word_value("HALF") == F(1, 2)
    assert isinstance(number_word_value("twice"), F)
    assert number_word_value("dozenth") is None
    assert number_word_value("") is None


def test_a_fraction_word_is_also_its_denominator_and_a_whole_word_only_once():
    assert readings("A Fourth of the 16 slices, twice.") == [
        (F(16), "16"),
        (F(1, 4), "Fourth"),
        (F(4), "Fourth"),
        (F(2), "twice"),
    ]
    assert readings("half of them") == [(F(1, 2), "half"), (F(2), "half")]
    assert readings("someone fourths") == [(F(1, 4), "fourths"), (F(4), "fourths")]  # not the "one" in "someone"


def test_numbers_longer_than_any_operation_can_use_are_not_numbers():
    longest = "9" * MAX_DIGITS
    assert readings(f"{longest} and {longest}9 and 7") == [(F(longest), longest), (F(7), "7")]
    grouped = "1" + ",000" * (MAX_DIGITS // 3)  # MAX_DIGITS + 1 digits once the commas are gone
    assert readings(grouped) == []


def test_quantities_are_in_text_order_a_percent_number_first():
    text = "Three friends share 25% of 12 pies."
    assert [(v, text[a:b]) for v, a, b in quantities(text)] == [
        (F(3), "Three"),
        (F(25), "25"),
        (F(1, 4), "25"),
        (F(12), "12"),
    ]
