"""Span invariants on many random texts with two different tokenizers, and the segmenters on real CoTs."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mycelium_datasets.segment import (
    SEGMENTERS,
    SegmenterConfig,
    boundaries_to_spans,
    check_spans,
    equation_extents,
    jsd_curve,
    segment,
    snap_to_word_start,
)

from conftest import check_token_alignment


@lru_cache(maxsize=2)
def tokenizer(name: str):
    from transformers import AutoTokenizer

    from mycelium_datasets.defaults import resolve_backbone, resolve_teacher

    return AutoTokenizer.from_pretrained(resolve_teacher() if name == "bpe" else resolve_backbone())


PIECES = st.sampled_from(
    [
        "Natalia",
        " sold",
        " 48",
        " clips",
        ".",
        " 48/2 = 24",
        "\n",
        " then",
        " so",
        ",",
        " $1,200",
        " 0.5",
        " x",
        "=",
        " 3.75",
        "%",
        " and",
        ";",
        ":",
        " ",
        "  ",
        "é",
        "12",
        "ab",
        "-",
        "*",
        "(",
        ")",
        "The answer is 72.",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(PIECES, min_size=1, max_size=40),
    kind=st.sampled_from(["bpe", "wordpiece"]),
    method=st.sampled_from(SEGMENTERS),
    seed=st.integers(0, 2**16),
)
def test_span_invariants_on_random_texts(pieces, kind, method, seed):
    text = "".join(pieces)
    tok = tokenizer(kind)
    offsets = [tuple(o) for o in tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    if not offsets:
        return
    jsd = np.random.default_rng(seed).random(len(offsets))
    spans, boundaries = segment(method, text, offsets, jsd, SegmenterConfig())
    check_spans(text, spans)  # text == cot[a:b]; tiles in order; no cut inside a word or number
    assert spans[0]["char_start"] == 0 and spans[-1]["char_end"] == len(text)
    assert all(0 <= s["token_start"] <= s["token_end"] <= len(offsets) for s in spans)
    assert boundaries == sorted(boundaries)
    check_token_alignment(offsets, spans)


def test_a_span_after_a_newline_starts_on_its_own_first_token_not_on_the_newline():
    cot = "Natalia sold 48 clips.\nThen she sold 24 more."
    offsets = [
        tuple(o)
        for o in tokenizer("bpe")(cot, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    spans, _ = segment("sentence", cot, offsets, None)
    assert [s["text"] for s in spans] == ["Natalia sold 48 clips.\n", "Then she sold 24 more."]
    newline = offsets.index((22, 23))  # the BPE tokenizer gives "\n" a token of its own, ending where "Then" starts
    assert spans[1]["token_start"] == newline + 1 and spans[0]["token_end"] == newline + 1
    check_token_alignment(offsets, spans)


def test_random_token_boundaries_are_snapped_to_words():
    text = "Natalia sold 48/2 = 24 clips in May, and 1,200 in June."
    offsets = [
        tuple(o)
        for o in tokenizer("bpe")(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    spans = boundaries_to_spans(text, offsets, range(1, len(offsets)))  # a cut before every token
    check_spans(text, spans)
    assert "1,200 " in [s["text"] for s in spans]  # the digits were single tokens, the number stays whole


def test_snap_to_word_start():
    text = "sold 1,200 clips"
    assert snap_to_word_start(text, 7) == 5  # "1,|200" -> before "1"
    assert snap_to_word_start(text, 13) == 11  # "cl|ips" -> before "clips"
    assert snap_to_word_start(text, 5) == 5


def test_equation_extents():
    text = "She sold 48/2 = 24 clips and paid $1,200 * 0.2 = $240."
    found = [text[a:b] for a, b in equation_extents(text)]
    assert found == ["48/2 = 24", "$1,200 * 0.2 = $240"]


def test_sentence_segmenter_on_a_gsm8k_solution():
    cot = (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n"
        "The answer is 72."
    )
    offsets = [
        tuple(o)
        for o in tokenizer("bpe")(cot, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    spans, _ = segment("sentence", cot, offsets, None)
    assert [s["text"].strip() for s in spans] == cot.split("\n")


def test_decimal_points_do_not_end_sentences():
    cot = "It costs 0.5 * 3 = 1.5 dollars. Then 1.5 + 2 = 3.5 dollars."
    offsets = [
        tuple(o)
        for o in tokenizer("bpe")(cot, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    spans, _ = segment("sentence", cot, offsets, None)
    assert [s["text"] for s in spans] == ["It costs 0.5 * 3 = 1.5 dollars. ", "Then 1.5 + 2 = 3.5 dollars."]


def test_jsd_curve_is_zero_for_identical_rows_and_positive_otherwise():
    rows = np.zeros((3, 6), dtype=np.float32)
    rows[0, :4] = 0.25
    rows[1, :5] = 0.2
    rows[2, :5] = 0.2
    curve = jsd_curve(rows, cot_start=3)
    assert curve[0] == 0 and curve[1] > 0 and curve[2] == pytest.approx(0, abs=1e-12)
    assert np.all(curve <= 1)


def test_unknown_segmenter():
    with pytest.raises(ValueError, match="valid choices: jsd, sentence, jsd_clause"):
        segment("words", "a b", [(0, 1), (2, 3)], None)
