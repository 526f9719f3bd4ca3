"""The JSD curve against its definition (JSD in bits of consecutive attention rows), and the cuts, spans and
segmenters of ``segment`` on small hand-made texts whose right answer can be read off."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.signal import savgol_filter

from mycelium_datasets.segment import (
    SegmenterConfig,
    boundaries_to_spans,
    check_spans,
    equation_extents,
    jsd_curve,
    jsd_equation_cuts,
    jsd_peaks,
    segment,
    sentence_cuts,
    smooth,
    snap_to_word_start,
    token_char_starts,
)


def entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def jsd_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits, from its definition: H(mixture) - mean of H(p), H(q)."""
    p, q = p / p.sum(), q / q.sum()
    return entropy_bits((p + q) / 2) - (entropy_bits(p) + entropy_bits(q)) / 2


def test_each_value_is_the_divergence_of_a_row_from_the_one_before():
    # cot_start 1: row t covers positions 0 .. 1 + t; rows sum to 1, as softmax rows do
    rows = np.array(
        [
            [0.5, 0.5, 0.0, 0.0],
            [0.2, 0.3, 0.5, 0.0],
            [0.2, 0.3, 0.5, 0.0],  # the same as before: 0
            [0.1, 0.1, 0.1, 0.7],
        ],
        dtype=np.float32,
    )
    curve = jsd_curve(rows, cot_start=1)
    assert curve.dtype == np.float64 and curve[0] == 0
    expected = [0.0] + [jsd_bits(rows[t - 1].astype(np.float64), rows[t].astype(np.float64)) for t in (1, 2, 3)]
    np.testing.assert_allclose(curve, expected, atol=1e-6)
    assert curve[2] == 0 and 0 < curve[1] < 1 and 0 < curve[3] < 1


def test_disjoint_rows_are_one_bit_apart():
    rows = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(jsd_curve(rows, cot_start=0), [0.0, 1.0], atol=1e-9)


def test_an_empty_row_gives_zero_and_the_curve_goes_on():
    rows = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],  # no attention recorded (padding): nothing to compare, either side
            [0.0, 1.0, 0.0],
            [0.5, 0.0, 0.5],
        ]
    )
    curve = jsd_curve(rows, cot_start=0)
    assert not np.isnan(curve).any()
    assert curve[1] == 0 and curve[2] == 0
    assert curve[3] > 0


def test_the_first_token_has_no_row_before_it():
    rows = np.array([[0.2, 0.8, 0.0], [0.5, 0.2, 0.3], [0.9, 0.05, 0.05]])  # the last row differs from the first
    assert jsd_curve(rows, cot_start=1)[0] == 0


# ---------------------------------------------------------------------------------------------------------------
# Cuts, spans and the segmenters on hand-made word tokens (no tokenizer: each run of non-space characters is a token)
# ---------------------------------------------------------------------------------------------------------------


def word_offsets(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def peak_at(offsets: list[tuple[int, int]], token: int, width: int = 0) -> np.ndarray:
    """A JSD curve that is highest at ``token`` (a plateau ``width`` tokens either side, then lower)."""
    curve = np.zeros(len(offsets))
    curve[token] = 1.0
    for d in range(1, width + 1):
        for t in (token - d, token + d):
            if 0 <= t < len(curve):
                curve[t] = 1.0 - 0.3 * d
    return curve


def texts(spans: list[dict]) -> list[str]:
    return [s["text"] for s in spans]


RAW = SegmenterConfig(window=1)  # no smoothing: the curve's own peak


def test_jsd_clause_cuts_between_two_equations_where_the_attention_shifts():
    text = "2+3 = 5 then we add 5*4 = 20"
    offsets = word_offsets(text)
    add, second = 5, 6  # token indices of "add" and of the second equation's "5*4"
    assert text[offsets[add][0] :].startswith("add") and text[offsets[second][0] :].startswith("5*4")
    for config in (RAW, SegmenterConfig()):  # a broad peak stays where it is under the default smoothing
        spans, boundaries = segment("jsd_clause", text, offsets, peak_at(offsets, add, width=2), config)
        assert texts(spans) == ["2+3 = 5 then we ", "add 5*4 = 20"]
        assert boundaries == [add]
        check_spans(text, spans)
    # the second equation's own start is a candidate too
    spans, _ = segment("jsd_clause", text, offsets, peak_at(offsets, second), RAW)
    assert texts(spans) == ["2+3 = 5 then we add ", "5*4 = 20"]
    # the ablation: the first word after the first equation, whatever the curve says
    first = SegmenterConfig(window=1, between_equations="first")
    spans, _ = segment("jsd_clause", text, offsets, peak_at(offsets, add), first)
    assert texts(spans) == ["2+3 = 5 ", "then we add 5*4 = 20"]


def test_jsd_clause_cuts_each_pair_of_equations_that_has_a_word_between():
    # no space between the first two equations: no word start to cut at; the next pair is still cut
    text = "1+1 = 2;2+2 = 4 then 3+3 = 6"
    offsets = word_offsets(text)
    assert [text[a:b] for a, b in equation_extents(text)] == ["1+1 = 2", "2+2 = 4", "3+3 = 6"]
    then = next(i for i, (a, _) in enumerate(offsets) if text[a:].startswith("then"))
    spans, _ = segment("jsd_clause", text, offsets, peak_at(offsets, then), RAW)
    assert texts(spans) == ["1+1 = 2;2+2 = 4 ", "then 3+3 = 6"]


def test_jsd_clause_never_pairs_equations_of_different_sentences():
    text = "It is 2+3 = 5. Then 5*4 = 20."
    offsets = word_offsets(text)
    second = next(i for i, (a, _) in enumerate(offsets) if text[a:].startswith("5*4"))
    spans, _ = segment("jsd_clause", text, offsets, peak_at(offsets, second), RAW)
    assert texts(spans) == ["It is 2+3 = 5. ", "Then 5*4 = 20."]
    assert jsd_equation_cuts(text, offsets, peak_at(offsets, second), RAW) == []


def test_the_jsd_segmenter_cuts_at_the_peaks_of_the_curve():
    text = "we sold some clips and then we bought more"
    offsets = word_offsets(text)
    spans, boundaries = segment("jsd", text, offsets, peak_at(offsets, 5), RAW)  # "then"
    assert texts(spans) == ["we sold some clips and ", "then we bought more"]
    assert boundaries == [5]
    curve = np.zeros(len(offsets))
    curve[[2, 5, 7]] = 1.0  # three peaks: three boundaries, each the start of the span after it
    spans, boundaries = segment("jsd", text, offsets, curve, RAW)
    assert boundaries == [2, 5, 7] and [s["token_start"] for s in spans] == [0, 2, 5, 7]


def test_a_peak_on_the_second_token_is_a_boundary():
    curve = np.array([0.0, 1.0, 0.0, 0.0, 0.5, 0.0])
    assert jsd_peaks(curve, RAW).tolist() == [1, 4]


def test_prominence_drops_the_small_bumps_in_proportion_to_the_curve_spread():
    curve = np.array([0.0, 0.05, 0.0, 0.0, 1.0, 0.0, 0.0, 0.06, 0.0, 0.0])
    assert jsd_peaks(curve, RAW).tolist() == [1, 4, 7]  # prominence 0 (the field guide's setting): every peak
    std = float(np.std(curve))
    for k in (0.5, 1.0, 2.0):
        keep = jsd_peaks(curve, SegmenterConfig(window=1, prominence_std=k)).tolist()
        assert keep == [4], k  # the bumps' prominence (0.05, 0.06) is far below k * std
    # a threshold just above a bump's prominence drops it, one just below keeps it
    assert jsd_peaks(curve, SegmenterConfig(window=1, prominence_std=0.055 / std)).tolist() == [4, 7]
    assert jsd_peaks(curve, SegmenterConfig(window=1, prominence_std=0.045 / std)).tolist() == [1, 4, 7]


def test_smoothing_applies_from_a_window_of_three_and_a_curve_as_long_as_the_window():
    spike = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    assert not np.allclose(smooth(spike, 3, 1), spike)
    assert not np.allclose(smooth(spike, 5, 2), spike)  # exactly as long as the window
    np.testing.assert_allclose(smooth(spike, 5, 2), savgol_filter(spike, 5, 2))
    # what cannot be smoothed is returned as it is: window under 3, curve shorter than the window, order >= window
    for window, order in ((2, 1), (7, 2), (3, 3)):
        out = smooth(spike, window, order)
        np.testing.assert_array_equal(out, spike)
        assert out is not spike


def test_spans_are_the_declared_records_and_token_ranges_meet():
    text = "a+b c"
    offsets = [(0, 1), (1, 2), (2, 3), (4, 5)]
    spans = boundaries_to_spans(text, offsets, [1], extra_char_cuts=[4])
    assert spans == [
        {"token_start": 0, "token_end": 1, "char_start": 0, "char_end": 1, "text": "a"},
        {"token_start": 1, "token_end": 3, "char_start": 1, "char_end": 4, "text": "+b "},
        {"token_start": 3, "token_end": 4, "char_start": 4, "char_end": 5, "text": "c"},
    ]
    assert boundaries_to_spans("", [], []) == []


def test_boundaries_outside_the_tokens_and_cuts_in_trailing_space_add_no_span():
    text = " a b  "
    offsets = word_offsets(text)  # (1, 2), (3, 4)
    assert texts(boundaries_to_spans(text, offsets, [0, 2, 5, -1])) == [" a b  "]  # token 0 starts the first span
    assert texts(boundaries_to_spans(text, offsets, [], extra_char_cuts=[4, 5, 6])) == [" a b  "]
    assert texts(boundaries_to_spans(text, offsets, [1])) == [" a ", "b  "]


def test_check_spans_rejects_each_broken_invariant():
    text = "ab cd"
    check_spans(
        text, [{"char_start": 0, "char_end": 3, "text": "ab "}, {"char_start": 3, "char_end": 5, "text": "cd"}]
    )
    check_spans("", [])
    # each broken invariant is reported as itself: the message is what a failed build shows
    broken = {
        "empty span": [{"char_start": 0, "char_end": 0, "text": ""}, {"char_start": 0, "char_end": 5, "text": text}],
        "cut inside a word or number at 1": [
            {"char_start": 0, "char_end": 1, "text": "a"},
            {"char_start": 1, "char_end": 5, "text": "b cd"},
        ],
        "spans do not cover the CoT": [{"char_start": 0, "char_end": 3, "text": "ab "}],
        "span text differs from the CoT slice": [{"char_start": 0, "char_end": 5, "text": "ab ce"}],
        "spans do not tile the CoT in order": [
            {"char_start": 0, "char_end": 2, "text": "ab"},
            {"char_start": 3, "char_end": 5, "text": "cd"},
        ],
    }
    for message, spans in broken.items():
        with pytest.raises(AssertionError, match=f"^{message}$"):
            check_spans(text, spans)


@pytest.mark.parametrize("method", ["jsd", "jsd_clause"])
def test_a_jsd_segmenter_without_a_curve_is_refused(method):
    with pytest.raises(ValueError, match=f"^the {method} segmenter needs a JSD curve$"):
        segment(method, "a b", [(0, 1), (2, 3)], None)


def test_sentence_cuts_at_each_sentence_start_but_not_inside_an_equation():
    assert sentence_cuts("A. B.\n") == [3]  # the end of the text is no cut
    assert sentence_cuts("\nA") == [1]
    assert sentence_cuts("Done. 2+3 = 5") == [6]  # a sentence may start with an equation
    assert sentence_cuts("So \\[x = 1.\ny = 2\\] holds. Next") == [27]  # the break inside display math is no cut


def test_snapping_moves_a_cut_back_to_the_start_of_its_word_or_number():
    assert snap_to_word_start("ab", 1) == 0
    assert snap_to_word_start("abcd", 3) == 0
    assert snap_to_word_start("a_b", 2) == 0  # "_" joins a word
    assert snap_to_word_start("ab", 0) == 0 and snap_to_word_start("ab", 2) == 2  # the ends stay
    assert snap_to_word_start("1.5", 2) == 0 and snap_to_word_start("1.5", 1) == 0  # a decimal is one number
    assert snap_to_word_start("x 1,5", 4) == 2
    assert snap_to_word_start("12.", 2) == 2  # a point after a number, then nothing: not inside it
    assert snap_to_word_start("3. Then", 1) == 1  # a sentence's final point is not a decimal point
    assert snap_to_word_start("a .5", 3) == 3  # ".5" has no digit before the point


def test_token_starts_are_clamped_to_the_text():
    assert token_char_starts([(0, 1), (1, 3), (-1, 0), (5, 9)], 4) == [0, 1, 0, 4]


def test_jsd_clause_reads_the_curve_at_the_token_that_holds_the_word_whatever_the_tokenizer():
    # a BPE tokenizer (the teacher's) starts " add" at the space before the word; a WordPiece one at the word: the
    # same peak on the same word must give the same cut
    text = "2+3 = 5 then we add 5*4 = 20"
    for offsets in (word_offsets(text), [m.span() for m in re.finditer(r"\s*\S+", text)]):
        add = next(i for i, (a, b) in enumerate(offsets) if text[a:b].strip() == "add")
        spans, _ = segment("jsd_clause", text, offsets, peak_at(offsets, add), RAW)
        assert texts(spans) == ["2+3 = 5 then we ", "add 5*4 = 20"], offsets
    # the last word of the gap is read at the last token too
    text = "2+3 = 5 so 5*4=20"
    offsets = word_offsets(text)
    spans, _ = segment("jsd_clause", text, offsets, peak_at(offsets, len(offsets) - 1), RAW)
    assert texts(spans) == ["2+3 = 5 so ", "5*4=20"]


@pytest.mark.parametrize(
    "text, found",
    [
        # two dollar amounts across a sentence are not inline math; display math after them still is
        ("It costs $5. Then 5+2 = $7 and \\[x = 3\\].", ["5+2 = $7", "\\[x = 3\\]"]),
        ("so $x \\le 3$ holds", ["$x \\le 3$"]),  # a relation other than "="
        ("$$x = 1\ny = 2$$", ["$$x = 1\ny = 2$$"]),  # display math may hold a line break
        ("1+1 = 2\\(x = 3\\)", ["1+1 = 2", "\\(x = 3\\)"]),  # touching is not overlapping
        # an equation inside math merges into it, after two others
        ("1+1 = 2 and 2+2 = 4 then \\(y = 3+3 = 6\\)", ["1+1 = 2", "2+2 = 4", "\\(y = 3+3 = 6\\)"]),
    ],
)
def test_equation_extents_of_math_and_dollars(text, found):
    assert [text[a:b] for a, b in equation_extents(text)] == found
