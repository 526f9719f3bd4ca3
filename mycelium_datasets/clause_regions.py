"""The ``clause_regions`` artifact: each span's IAF tokens expanded to the problem clauses that hold them.

Raw IAF gives scattered tokens; a dependency parse turns them into contiguous, linguistically coherent regions
(field guide, "clause expansion"). For each of a span's top IAF tokens that carries content (punctuation and
whitespace, which on small teachers are attention sinks, are skipped), the enclosing clause is the subtree of the
nearest clausal head (ROOT, conj, advcl, relcl, ccomp, xcomp, acl, csubj, parataxis) *without* the subtrees of its
own clausal children, so "There are 17 boys and 17 girls playing table tennis" and the next clause stay apart; the
contiguous run around the token is kept, trimmed of punctuation and coordinating words at its edges, and overlapping
clauses are merged.

Input columns: ``id``, ``problem``, ``spans``, ``iaf_top`` (``iaf_maps``).
Output columns: ``iaf_maps``'s, plus ``span_regions`` (per span, its regions ``{char_start, char_end, text}`` in the
problem, heaviest IAF first) and ``regions`` (all spans' regions merged, in text order).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import datasets

from . import iaf_maps as iaf_maps_mod
from .clauses import clause_range, merge_ranges
from .columns import require_columns
from .defaults import load_spacy
from .runner import map_batches

# 1.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc
# 1.1.1: problems reads the equation shape; rows of the other shapes as before
# 1.1.5: the runner's progress bars (one per stage and split, on a terminal); the same rows as 1.1.4
# 1.1.5: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 1.1.6: quiet progress bars and the cards' dataset_info licence together (two branches merged)
# 1.1.7: teacher generation on CPU runs on the free cores (threads.py); the same greedy CoTs, the same rows
VERSION = "1.1.7"
INPUT_COLUMNS = ("id", "problem", "spans", "iaf_top")

REGION = {"char_start": datasets.Value("int32"), "char_end": datasets.Value("int32"), "text": datasets.Value("string")}
FEATURES = datasets.Features(
    {
        **iaf_maps_mod.FEATURES,
        "span_regions": datasets.List(datasets.List(REGION)),
        "regions": datasets.List(REGION),
    }
)


@dataclass
class ClauseRegionsConfig:
    """Configuration of the ``clause_regions`` artifact.

    Args:
        spacy_pipeline (`str`, *optional*): spaCy pipeline name or path (default: ``en_core_web_sm``, else its mirror).
        anchors (`int`, *optional*, defaults to 3): content tokens of each span's IAF top list expanded to clauses.
        min_weight (`float`, *optional*, defaults to 0.0): IAF weight below which a top token is not expanded.
    """

    spacy_pipeline: str | None = field(default=None, metadata={"help": "spaCy pipeline (default: en_core_web_sm)."})
    anchors: int = field(default=3, metadata={"help": "Content tokens of each span's IAF top list to expand."})
    min_weight: float = field(default=0.0, metadata={"help": "Minimum IAF weight of an expanded token."})

    def __post_init__(self) -> None:
        if self.anchors < 1:
            raise ValueError(f"anchors must be positive, got {self.anchors}")


def _is_content(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def span_regions(doc, top: list[dict], anchors: int, min_weight: float) -> list[tuple[int, int]]:
    """Regions of one span: the clauses of its heaviest content tokens, merged, heaviest-first."""
    chosen = [t for t in top if _is_content(t["text"]) and t["weight"] >= min_weight][:anchors]
    ranges = []
    for t in chosen:
        span = doc.char_span(t["char_start"], t["char_end"], alignment_mode="expand")
        if span is None or not len(span):
            continue
        ranges.append(clause_range(span.root))
    merged = merge_ranges(ranges)

    # order by the weight of the first anchor falling inside each region
    def weight(r):
        return -max((t["weight"] for t in chosen if r[0] <= t["char_start"] < r[1]), default=0.0)

    return sorted(merged, key=weight)


def make_regions(batch: dict, *, spacy_pipeline: str | None, anchors: int, min_weight: float) -> dict:
    """``batch -> batch``: clause regions per span and merged per problem (spaCy loaded once per process)."""
    nlp = load_spacy(spacy_pipeline)
    out = dict(batch)
    out["span_regions"], out["regions"] = [], []
    # Only problems with IAF tokens to expand are parsed: a 100,000-character problem whose trace was too long to
    # capture costs no parse (and one past spaCy's max_length no crash).
    texts = [problem if any(tops) else "" for problem, tops in zip(batch["problem"], batch["iaf_top"])]
    for problem, doc, tops in zip(batch["problem"], nlp.pipe(texts), batch["iaf_top"]):
        per_span, all_ranges = [], []
        for top in tops:
            ranges = span_regions(doc, top, anchors, min_weight)
            all_ranges.extend(ranges)
            per_span.append([{"char_start": a, "char_end": b, "text": problem[a:b]} for a, b in ranges])
        out["span_regions"].append(per_span)
        out["regions"].append(
            [{"char_start": a, "char_end": b, "text": problem[a:b]} for a, b in merge_ranges(all_ranges)]
        )
    return out


def build_clause_regions(
    maps: datasets.DatasetDict, config: ClauseRegionsConfig, num_proc: int | None = None
) -> datasets.DatasetDict:
    """Clause regions of every split of ``maps`` (an ``iaf_maps`` artifact), on ``num_proc`` processes (each parses
    its own rows with its own spaCy pipeline; the result is the one process's, row for row)."""
    result = datasets.DatasetDict()
    for split, dataset in maps.items():
        require_columns(dataset, INPUT_COLUMNS, stage="clause_regions", upstream="iaf_maps")
        result[split] = map_batches(
            dataset,
            make_regions,
            batch_size=64,
            fn_kwargs={
                "spacy_pipeline": config.spacy_pipeline,
                "anchors": config.anchors,
                "min_weight": config.min_weight,
            },
            features=FEATURES,
            num_proc=num_proc,
            preload=functools.partial(load_spacy, config.spacy_pipeline),
            desc=f"clause_regions/{split}",
        )
    return result
