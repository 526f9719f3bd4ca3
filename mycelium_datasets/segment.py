"""Cutting a chain of thought into spans: JSD over attention rows, sentence splits, and the hybrid of the two.

Every segmenter returns **token** boundaries, which :func:`boundaries_to_spans` turns into character spans through
the tokenizer's offsets (the field guide's killer bug was token indices read as characters). Three invariants hold
for every output, and are tested on many random texts with two tokenizers:

- ``span.text == cot[char_start:char_end]``;
- the spans tile the CoT in order, with no gap and no overlap;
- no boundary falls inside a word or a number.

Segmenters (``SEGMENTERS``):

- ``jsd``: the field guide's method. JSD between consecutive CoT attention rows, Savitzky-Golay smoothing
  (window 5, order 2), ``scipy.signal.find_peaks``; ``prominence_std`` (default 0, the field guide's setting) scales
  the peak prominence threshold with the curve's standard deviation.
- ``sentence``: sentence ends and newlines (the baseline; no attention needed).
- ``jsd_clause``: sentence ends and newlines always cut; a sentence that holds two or more equations is also cut
  between each pair of consecutive equations, at the word start where the smoothed JSD peaks. Language and equations
  say *that* a step ends there; the teacher's attention says *where*.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, savgol_filter
from scipy.spatial.distance import jensenshannon

SEGMENTERS = ("jsd", "sentence", "jsd_clause")

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
# An equation: numbers joined by operators, possibly with "=" and a result; its extent must not be cut.
# (any run of digits with "." or "," inside: "1,200.50", "3.5"; a sign, currency, percent and parentheses around)
_NUM = r"[$€£]?\(?-?\d+(?:[.,]\d+)*%?\)?"
_LATEX_MATH = re.compile(r"\$\$.+?\$\$|(?<!\\)\$[^$]+?(?<!\\)\$|\\\[.+?\\\]|\\\(.+?\\\)", re.DOTALL)
_EQUATION = re.compile(rf"{_NUM}(?:\s*(?:[-+*/×÷x^]|\\times|\\cdot|=)\s*{_NUM})+")


@dataclass(frozen=True)
class SegmenterConfig:
    """Settings of the segmenters (each reads the ones it uses)."""

    window: int = 5
    polyorder: int = 2
    prominence_std: float = 0.0
    # Ablation switch for jsd_clause: where a sentence is cut between two equations, take the first word start
    # instead of the JSD peak (shows JSD's own contribution in benchmarks/bench_segmentation.py).
    between_equations: str = "jsd"


def jsd_curve(rows: np.ndarray, cot_start: int) -> np.ndarray:
    """JSD (base 2, in [0, 1]) between the attention rows of consecutive CoT tokens; element 0 is 0.

    ``rows`` is ``(T_cot, T)``; row *t* covers positions ``0 .. cot_start + t`` (later ones are 0), so two
    consecutive rows are compared over the longer support.
    """
    n = rows.shape[0]
    out = np.zeros(n, dtype=np.float64)
    for t in range(1, n):
        width = cot_start + t + 1
        p, q = rows[t - 1, :width].astype(np.float64), rows[t, :width].astype(np.float64)
        if p.sum() <= 0 or q.sum() <= 0:
            continue
        out[t] = float(jensenshannon(p, q, base=2) ** 2)
    return out


def smooth(curve: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing; curves shorter than the window are returned as they are."""
    if window < 3 or len(curve) < window or polyorder >= window:
        return curve.copy()
    return savgol_filter(curve, window, polyorder)


def jsd_peaks(curve: np.ndarray, config: SegmenterConfig) -> np.ndarray:
    """Token indices of the peaks of the smoothed JSD curve (candidate boundaries: a span starts there)."""
    smoothed = smooth(curve, config.window, config.polyorder)
    prominence = config.prominence_std * float(np.std(smoothed)) if config.prominence_std > 0 else None
    peaks, _ = find_peaks(smoothed, prominence=prominence)
    return peaks[peaks > 0]


# ---------------------------------------------------------------------------------------------------------------
# Characters <-> tokens
# ---------------------------------------------------------------------------------------------------------------


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def snap_to_word_start(text: str, pos: int) -> int:
    """Move a cut that falls inside a word or a number (``4|8``, ``1,2|00``, ``3.|5``) back to where it starts."""
    while 0 < pos < len(text):
        left, right = text[pos - 1], text[pos]
        inside_word = _is_word_char(left) and _is_word_char(right)
        inside_number = (left in ".," and right.isdigit() and pos >= 2 and text[pos - 2].isdigit()) or (
            left.isdigit() and right in ".," and pos + 1 < len(text) and text[pos + 1].isdigit()
        )
        if not (inside_word or inside_number):
            break
        pos -= 1
    return pos


def token_char_starts(offsets: list[tuple[int, int]], text_len: int) -> list[int]:
    """Character position where each token starts (whitespace before a token belongs to the previous span)."""
    return [min(max(start, 0), text_len) for start, _ in offsets]


def boundaries_to_spans(text: str, offsets: list[tuple[int, int]], token_boundaries, extra_char_cuts=()) -> list[dict]:
    """Spans tiling ``text`` from token boundaries (a span starts at each boundary token).

    ``offsets`` are the tokenizer's ``(char_start, char_end)`` per CoT token. Each cut is moved to a word start, then
    moved forward past leading whitespace. Returns ``[{token_start, token_end, char_start, char_end, text}]`` with
    ``token_end``/``char_end`` exclusive.
    """
    n_tokens = len(offsets)
    starts = token_char_starts(offsets, len(text))
    cuts = set()
    for b in token_boundaries:
        b = int(b)
        if 0 < b < n_tokens:
            cuts.add(snap_to_word_start(text, starts[b]))
    for c in extra_char_cuts:
        cuts.add(snap_to_word_start(text, int(c)))
    # A span starts at its first non-space character; whitespace stays at the end of the previous span.
    clean = set()
    for c in cuts:
        while c < len(text) and text[c].isspace():
            c += 1
        if 0 < c < len(text):
            clean.add(c)
    char_bounds = [0, *sorted(clean), len(text)]

    def token_at(char_pos: int) -> int:
        # first token whose end is beyond char_pos
        for i, (_, end) in enumerate(offsets):
            if end > char_pos:
                return i
        return n_tokens

    spans = []
    for a, b in zip(char_bounds, char_bounds[1:]):
        if b <= a:
            continue
        spans.append(
            {"token_start": token_at(a), "token_end": token_at(b), "char_start": a, "char_end": b, "text": text[a:b]}
        )
    if spans:
        spans[-1]["token_end"] = n_tokens
    return spans


# ---------------------------------------------------------------------------------------------------------------
# Segmenters
# ---------------------------------------------------------------------------------------------------------------


def equation_extents(text: str) -> list[tuple[int, int]]:
    """Character extents of equations: plain arithmetic (``48/2 = 24``, ``$1,200 * 0.2 = $240``) and LaTeX math
    holding a relation (``$x^2 = 4$``, ``\\[ ... \\]``), sorted, overlapping ones merged."""
    found = [m.span() for m in _EQUATION.finditer(text)]
    for m in _LATEX_MATH.finditer(text):
        math = m.group(0)
        # "$5. Then 5+2 = $7" is two dollar amounts, not inline math: inline math does not cross a sentence.
        if math.startswith("$") and not math.startswith("$$") and re.search(r"[.!?]\s+[A-Z]|\n", math):
            continue
        if re.search(r"=|\\le|\\ge|<|>", math):
            found.append(m.span())
    merged: list[tuple[int, int]] = []
    for a, b in sorted(found):
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _inside(pos: int, extents: list[tuple[int, int]]) -> bool:
    return any(a < pos < b for a, b in extents)


def sentence_cuts(text: str) -> list[int]:
    """Character positions where a new sentence or line starts (never inside an equation like ``0.5 * 3``)."""
    extents = equation_extents(text)
    return [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() < len(text) and not _inside(m.end(), extents)]


def jsd_equation_cuts(text: str, offsets, jsd: np.ndarray, config: SegmenterConfig) -> list[int]:
    """Inside each sentence that holds two or more equations, one cut between each pair of consecutive equations,
    at the word start where the smoothed JSD is highest: language and equations say *that* a step ends there, the
    teacher's attention says *where*."""
    smoothed = smooth(jsd, config.window, config.polyorder)
    starts = token_char_starts(offsets, len(text))
    bounds = [0, *sentence_cuts(text), len(text)]
    extents = equation_extents(text)
    cuts = []
    for a, b in zip(bounds, bounds[1:]):
        inside = [e for e in extents if a <= e[0] and e[1] <= b]
        for (_, left_end), (right_start, _) in zip(inside, inside[1:]):
            words = [m.start() for m in re.finditer(r"(?<=\s)\S", text[left_end : right_start + 1])]
            candidates = [left_end + w for w in words if left_end + w <= right_start]
            if not candidates:
                continue

            def score(pos: int) -> float:
                # the token holding the word's first character: the last one starting at or before it (a BPE token
                # starts at the space before its word, so the first token starting at or after it is the next word)
                token = max(bisect.bisect_right(starts, pos) - 1, 0)
                return float(smoothed[min(token, len(smoothed) - 1)])

            cuts.append(max(candidates, key=score) if config.between_equations == "jsd" else candidates[0])
    return cuts


def segment(
    method: str,
    text: str,
    offsets: list[tuple[int, int]],
    jsd: np.ndarray | None,
    config: SegmenterConfig = SegmenterConfig(),
) -> tuple[list[dict], list[int]]:
    """Cut ``text`` with ``method``; returns ``(spans, boundary_tokens)`` (the token indices that start spans)."""
    if method not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {method!r}; valid choices: {', '.join(SEGMENTERS)}")
    if not text:
        return [], []
    if method == "jsd":
        if jsd is None:
            raise ValueError("the jsd segmenter needs a JSD curve")
        spans = boundaries_to_spans(text, offsets, jsd_peaks(jsd, config))
    elif method == "sentence":
        spans = boundaries_to_spans(text, offsets, [], sentence_cuts(text))
    else:
        if jsd is None:
            raise ValueError("the jsd_clause segmenter needs a JSD curve")
        spans = boundaries_to_spans(
            text, offsets, [], sentence_cuts(text) + jsd_equation_cuts(text, offsets, jsd, config)
        )
    return spans, [s["token_start"] for s in spans[1:]]


def check_spans(text: str, spans: list[dict]) -> None:
    """Raise `AssertionError` unless the three span invariants hold (used by tests and by the builder)."""
    position = 0
    for s in spans:
        assert s["text"] == text[s["char_start"] : s["char_end"]], "span text differs from the CoT slice"
        assert s["char_start"] == position, "spans do not tile the CoT in order"
        assert s["char_end"] > s["char_start"], "empty span"
        position = s["char_end"]
        cut = s["char_start"]
        if 0 < cut < len(text):
            assert snap_to_word_start(text, cut) == cut, f"cut inside a word or number at {cut}"
    assert position == len(text) or not spans, "spans do not cover the CoT"
