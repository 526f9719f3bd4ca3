"""The ``jsd_spans`` artifact: each trace's CoT cut into steps, from the teacher's attention.

One teacher-forced forward over ``prompt + CoT`` per trace (:mod:`mycelium_datasets.capture`) gives the head-mean,
layer-mean attention row of every CoT token. From it:

- ``jsd``: the JSD between consecutive rows (one float per CoT token, the first is 0);
- ``spans``: the CoT cut by the configured segmenter (:mod:`mycelium_datasets.segment`), as character ranges
  derived from token offsets: ``{token_start, token_end, char_start, char_end, text}``;
- ``problem_attn``: for each CoT token, its attention to each *problem* token (not the chat template's system text
  or special tokens), with ``problem_token_offsets`` as character ranges in the problem text. ``iaf_maps`` is
  computed from these, so changing the segmenter never needs the model again.

Input columns: ``id``, ``prompt``, ``problem``, ``cot``, ``status`` (``cot_traces``).
Output columns: the input's, plus ``segmenter``, ``n_prompt_tokens``, ``cot_token_offsets``, ``jsd``, ``spans``,
``boundary_tokens``, ``problem_token_offsets``, ``problem_attn``, ``span_status``, ``span_status_reason``.
``span_status`` is ``ok``, ``no_cot`` (empty CoT: no spans), ``cot_too_short`` (one token: one span, no JSD),
``too_long`` (prompt + CoT exceed the teacher's context) or ``problem_not_in_prompt``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import datasets
import numpy as np

from . import cot_traces as cot_traces_mod
from .capture import CaptureError, EmptyInputError, TooLongError, attention_modules, capture_cot_attention
from .columns import require_columns
from .defaults import DEFAULT_TEACHER
from .runner import ProcessInfo, map_in_parts
from .segment import SEGMENTERS, SegmenterConfig, check_spans, jsd_curve, segment

logger = logging.getLogger(__name__)

# 1.1.0: jsd_clause reads the JSD of the token that holds a candidate word (1.0.0: the next one);
# cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc
# 1.1.1: problems reads the equation shape; rows of the other shapes as before
# 1.1.5: the runner's progress bars (one per stage and split, on a terminal); the same rows as 1.1.4
# 1.1.5: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 1.1.6: quiet progress bars and the cards' dataset_info licence together (two branches merged)
# 1.1.7: teacher generation on CPU runs on the free cores (threads.py); the same greedy CoTs, the same rows
VERSION = "1.1.7"
INPUT_COLUMNS = ("id", "prompt", "problem", "cot", "status")
OUTPUT_COLUMNS = (
    "segmenter",
    "n_prompt_tokens",
    "cot_token_offsets",
    "jsd",
    "spans",
    "boundary_tokens",
    "problem_token_offsets",
    "problem_attn",
    "span_status",
    "span_status_reason",
)
DEFAULT_SEGMENTER = "jsd_clause"

SPAN = {
    "token_start": datasets.Value("int32"),
    "token_end": datasets.Value("int32"),
    "char_start": datasets.Value("int32"),
    "char_end": datasets.Value("int32"),
    "text": datasets.Value("string"),
}
OFFSET = {"char_start": datasets.Value("int32"), "char_end": datasets.Value("int32")}
FEATURES = datasets.Features(
    {
        **cot_traces_mod.FEATURES,
        "segmenter": datasets.Value("string"),
        "n_prompt_tokens": datasets.Value("int32"),
        "cot_token_offsets": datasets.List(OFFSET),
        "jsd": datasets.List(datasets.Value("float32")),
        "spans": datasets.List(SPAN),
        "boundary_tokens": datasets.List(datasets.Value("int32")),
        "problem_token_offsets": datasets.List(OFFSET),
        "problem_attn": datasets.List(datasets.List(datasets.Value("float32"))),
        "span_status": datasets.Value("string"),
        "span_status_reason": datasets.Value("string"),
    }
)


@dataclass
class JsdSpansConfig:
    """Configuration of the ``jsd_spans`` artifact.

    Args:
        segmenter (`str`, *optional*, defaults to `"jsd_clause"`): ``jsd``, ``sentence`` or ``jsd_clause``.
        capture_teacher (`str`, *optional*): the model whose attention is captured; default: the trace's teacher.
        layers (`list[int]`, *optional*): layers averaged into the attention rows; all layers when empty.
        first_layers (`int`, *optional*, defaults to 0): average the model's first N layers instead (fewer when the
            model has fewer; the forward stops after them: the first 10 of SmolLM2's 30 layers capture 3.5x faster);
            0 for all (or ``layers``).
        window (`int`, *optional*, defaults to 5): Savitzky-Golay window.
        polyorder (`int`, *optional*, defaults to 2): Savitzky-Golay order.
        prominence_std (`float`, *optional*, defaults to 0.0):
            ``jsd`` peaks need a prominence of this many standard deviations of the curve (0: any peak, the field
            guide's setting).
        chunk_rows (`int`, *optional*, defaults to 256): CoT rows computed at once per layer during capture.
        capture_part_size (`int`, *optional*, defaults to 64): rows per resumable part.
    """

    segmenter: str = field(default=DEFAULT_SEGMENTER, metadata={"help": f"One of {', '.join(SEGMENTERS)}."})
    capture_teacher: str | None = field(default=None, metadata={"help": "Model to capture (default: the trace's)."})
    layers: list[int] = field(default_factory=list, metadata={"help": "Layers to average (default: all)."})
    first_layers: int = field(
        default=0,
        metadata={"help": "Average the model's first N layers (0: all, or --layers); the forward stops there."},
    )
    window: int = field(default=5, metadata={"help": "Savitzky-Golay window."})
    polyorder: int = field(default=2, metadata={"help": "Savitzky-Golay polynomial order."})
    prominence_std: float = field(default=0.0, metadata={"help": "jsd: peak prominence in curve std units."})
    chunk_rows: int = field(default=256, metadata={"help": "CoT rows per capture chunk."})
    capture_part_size: int = field(default=64, metadata={"help": "Rows per resumable part of the capture."})

    def __post_init__(self) -> None:
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"unknown segmenter {self.segmenter!r}; valid choices: {', '.join(SEGMENTERS)}")
        if self.first_layers < 0 or (self.first_layers and self.layers):
            raise ValueError("first_layers must be 0 or positive, and cannot be combined with layers")
        if self.window < 1 or self.polyorder < 0 or self.chunk_rows < 1 or self.capture_part_size < 1:
            raise ValueError("window, chunk_rows and capture_part_size must be positive and polyorder non-negative")

    def segmenter_config(self) -> SegmenterConfig:
        return SegmenterConfig(
            window=self.window,
            polyorder=self.polyorder,
            prominence_std=self.prominence_std,
        )


@lru_cache(maxsize=2)
def load_capture_model(name_or_path: str):
    """``(model, tokenizer)`` for capture, once per process, float32 on CPU (bfloat16 on GPU)."""
    from .teacher import load_teacher

    model, tokenizer = load_teacher(name_or_path)
    if not getattr(tokenizer, "is_fast", False):
        raise CaptureError(f"the tokenizer of {name_or_path} gives no character offsets (a fast tokenizer is needed)")
    return model, tokenizer


def problem_token_span(prompt: str, problem: str, prompt_offsets: list[tuple[int, int]]) -> tuple[list[int], list]:
    """Indices of the prompt tokens that lie inside the problem text, and their offsets in the problem text."""
    start = prompt.rfind(problem) if problem else -1
    if start < 0:
        return [], []
    end = start + len(problem)
    indices, offsets = [], []
    for i, (a, b) in enumerate(prompt_offsets):
        if b <= a:
            continue  # special tokens have empty offsets
        if a >= start and b <= end or (a < start < b <= end and prompt[a:start].isspace()):
            indices.append(i)
            offsets.append({"char_start": max(a, start) - start, "char_end": b - start})
    return indices, offsets


def trace_attention(
    model, tokenizer, prompt: str, cot: str, layers: list[int] | None, chunk_rows: int, first_layers: int = 0
) -> dict:
    """Tokenize, capture and reduce one trace; returns the fields the spans and IAF need (or raises CaptureError).
    ``first_layers`` (when ``layers`` is None) selects the model's first N layers."""
    if first_layers and not layers:
        layers = list(range(min(first_layers, len(attention_modules(model)))))
    prompt_enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    cot_enc = tokenizer(cot, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(prompt_enc["input_ids"]) + list(cot_enc["input_ids"])
    rows = capture_cot_attention(model, ids, len(prompt_enc["input_ids"]), layers=layers, chunk_rows=chunk_rows)
    return {
        "rows": rows.numpy(),
        "n_prompt": len(prompt_enc["input_ids"]),
        "prompt_offsets": [tuple(o) for o in prompt_enc["offset_mapping"]],
        "cot_offsets": [tuple(o) for o in cot_enc["offset_mapping"]],
    }


def make_spans(
    batch: dict,
    *,
    capture_teacher: str | None,
    layers: list[int],
    first_layers: int = 0,
    segmenter: str,
    segmenter_kwargs: dict,
    chunk_rows: int,
) -> dict:
    """``batch -> batch``: capture attention for each trace, compute JSD, cut spans, keep problem attention."""
    n = len(batch["id"])
    out = {k: list(v) for k, v in batch.items()}
    new = {k: [None] * n for k in OUTPUT_COLUMNS}
    config = SegmenterConfig(**segmenter_kwargs)
    for i in range(n):
        cot, prompt, problem = batch["cot"][i] or "", batch["prompt"][i] or "", batch["problem"][i] or ""
        row = {
            "segmenter": segmenter,
            "n_prompt_tokens": 0,
            "cot_token_offsets": [],
            "jsd": [],
            "spans": [],
            "boundary_tokens": [],
            "problem_token_offsets": [],
            "problem_attn": [],
            "span_status": "ok",
            "span_status_reason": "",
        }
        teacher = capture_teacher or batch["teacher"][i] or DEFAULT_TEACHER
        if not cot.strip() or not prompt:
            row.update(span_status="no_cot", span_status_reason="the trace has no CoT (or no prompt) to segment")
        else:
            model, tokenizer = load_capture_model(teacher)
            try:
                captured = trace_attention(model, tokenizer, prompt, cot, layers or None, chunk_rows, first_layers)
            except TooLongError as exc:
                row.update(span_status="too_long", span_status_reason=str(exc))
            except EmptyInputError as exc:
                row.update(span_status="no_cot", span_status_reason=str(exc))
            else:
                offsets = captured["cot_offsets"]
                jsd = jsd_curve(captured["rows"], captured["n_prompt"])
                if len(offsets) < 2:
                    spans = [
                        {
                            "token_start": 0,
                            "token_end": len(offsets),
                            "char_start": 0,
                            "char_end": len(cot),
                            "text": cot,
                        }
                    ]
                    boundaries: list[int] = []
                    row.update(span_status="cot_too_short", span_status_reason="a one-token CoT has no JSD curve")
                else:
                    spans, boundaries = segment(segmenter, cot, offsets, jsd, config)
                check_spans(cot, spans)
                indices, problem_offsets = problem_token_span(prompt, problem, captured["prompt_offsets"])
                if not indices:
                    row.update(
                        span_status="problem_not_in_prompt",
                        span_status_reason="the problem text was not found verbatim in the prompt",
                    )
                row.update(
                    n_prompt_tokens=captured["n_prompt"],
                    cot_token_offsets=[{"char_start": a, "char_end": b} for a, b in offsets],
                    jsd=jsd.astype(np.float32).tolist(),
                    spans=spans,
                    boundary_tokens=boundaries,
                    problem_token_offsets=problem_offsets,
                    problem_attn=captured["rows"][:, indices].astype(np.float32).tolist() if indices else [],
                )
        for k in new:
            new[k][i] = row[k]
    out.update(new)
    return out


def build_jsd_spans(
    traces: datasets.DatasetDict, config: JsdSpansConfig, work_dir: str | os.PathLike, info: ProcessInfo | None = None
) -> datasets.DatasetDict:
    """Capture and segment every split of ``cot_traces`` (resumable through ``work_dir``, a folder, `str` or
    `os.PathLike`; sharded under a distributed launch)."""
    work_dir = Path(work_dir)
    info = info or ProcessInfo()
    result = datasets.DatasetDict()
    for split, dataset in traces.items():
        require_columns(dataset, INPUT_COLUMNS, stage="jsd_spans", upstream="cot_traces")
        if config.capture_teacher is None and "teacher" not in dataset.column_names:
            raise ValueError("jsd_spans needs a 'teacher' column or capture_teacher")
        result[split] = map_in_parts(
            dataset,
            make_spans,
            work_dir=work_dir / split,
            features=FEATURES,
            fn_kwargs={
                "capture_teacher": config.capture_teacher,
                "layers": list(config.layers),
                "first_layers": config.first_layers,
                "segmenter": config.segmenter,
                "segmenter_kwargs": config.segmenter_config().__dict__,
                "chunk_rows": config.chunk_rows,
            },
            batch_size=8,
            part_size=config.capture_part_size,
            info=info,
            desc=f"jsd_spans/{split}",
        )
    return result
