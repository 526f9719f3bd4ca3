"""The ``iaf_maps`` artifact: each CoT span mapped onto the problem text by Input Attention Fraction.

IAF(j, span) = attention from the span's CoT tokens to problem token j ÷ their total attention to all problem tokens
(problem tokens only: not the chat template's system text or special tokens). It is computed from ``jsd_spans``'s
``problem_attn`` (per CoT token, its attention to each problem token), so no model is needed here.

Input columns: ``id``, ``problem``, ``spans``, ``problem_attn``, ``problem_token_offsets`` (``jsd_spans``).
Output columns: ``jsd_spans``'s, without the bulky ``problem_attn``, plus per span ``iaf`` (one float per problem
token, summing to 1; empty when the span put no attention on the problem) and ``iaf_top``: its ``top_k`` problem
tokens ``{char_start, char_end, weight, text}`` with offsets into the *problem text*, heaviest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets
import numpy as np

from . import jsd_spans as jsd_spans_mod
from .columns import require_columns

# 1.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc;
# rows computed afresh (no datasets map cache)
# 1.1.1: problems reads the equation shape; rows of the other shapes as before
# 1.1.5: the runner's progress bars (one per stage and split, on a terminal); the same rows as 1.1.4
# 1.1.5: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 1.1.6: quiet progress bars and the cards' dataset_info licence together (two branches merged)
# 1.1.7: teacher generation on CPU runs on the free cores (threads.py); the same greedy CoTs, the same rows
VERSION = "1.1.7"
INPUT_COLUMNS = ("id", "problem", "spans", "problem_attn", "problem_token_offsets")

TOP = {
    "char_start": datasets.Value("int32"),
    "char_end": datasets.Value("int32"),
    "weight": datasets.Value("float32"),
    "text": datasets.Value("string"),
}
FEATURES = datasets.Features(
    {
        **{k: v for k, v in jsd_spans_mod.FEATURES.items() if k != "problem_attn"},
        "iaf": datasets.List(datasets.List(datasets.Value("float32"))),
        "iaf_top": datasets.List(datasets.List(TOP)),
    }
)


@dataclass
class IafMapsConfig:
    """Configuration of the ``iaf_maps`` artifact.

    Args:
        top_k (`int`, *optional*, defaults to 5): problem tokens listed per span in ``iaf_top``.
    """

    top_k: int = field(default=5, metadata={"help": "Problem tokens listed per span."})

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be positive, got {self.top_k}")


def span_iaf(problem_attn: np.ndarray, token_start: int, token_end: int) -> np.ndarray:
    """IAF of one span: its CoT rows' attention to each problem token, normalized to sum to 1 (empty if none)."""
    mass = problem_attn[token_start:token_end].sum(axis=0) if token_end > token_start else np.zeros(0)
    total = float(mass.sum()) if mass.size else 0.0
    return mass / total if total > 0 else np.zeros(0, dtype=np.float64)


def make_iaf(batch: dict, *, top_k: int) -> dict:
    """``batch -> batch``: per span, the IAF over problem tokens and its heaviest tokens."""
    out = {k: v for k, v in batch.items() if k != "problem_attn"}
    out["iaf"], out["iaf_top"] = [], []
    for problem, spans, attn, offsets in zip(
        batch["problem"], batch["spans"], batch["problem_attn"], batch["problem_token_offsets"]
    ):
        matrix = np.asarray(attn, dtype=np.float64) if attn else np.zeros((0, 0))
        iafs, tops = [], []
        for s in spans:
            iaf = span_iaf(matrix, s["token_start"], s["token_end"]) if matrix.size else np.zeros(0)
            order = np.argsort(-iaf, kind="stable")[:top_k] if iaf.size else []
            iafs.append(iaf.astype(np.float32).tolist())
            tops.append(
                [
                    {
                        "char_start": offsets[j]["char_start"],
                        "char_end": offsets[j]["char_end"],
                        "weight": float(iaf[j]),
                        "text": problem[offsets[j]["char_start"] : offsets[j]["char_end"]],
                    }
                    for j in order
                ]
            )
        out["iaf"].append(iafs)
        out["iaf_top"].append(tops)
    return out


def build_iaf_maps(spans: datasets.DatasetDict, config: IafMapsConfig) -> datasets.DatasetDict:
    result = datasets.DatasetDict()
    for split, dataset in spans.items():
        require_columns(dataset, INPUT_COLUMNS, stage="iaf_maps", upstream="jsd_spans")
        result[split] = dataset.map(
            make_iaf,
            batched=True,
            batch_size=32,
            fn_kwargs={"top_k": config.top_k},
            features=FEATURES,
            remove_columns=["problem_attn"],
            desc=f"iaf_maps/{split}",
            # datasets' map cache knows make_iaf by name, not by the helpers it calls: after an edit it would hand
            # back old rows; the artifact's fingerprint (which hashes the code) is the cache
            load_from_cache_file=False,
        )
    return result
