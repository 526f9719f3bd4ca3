"""Builder of the ``jsd_spans`` artifact (schema, config and transforms live in ``mycelium_datasets.jsd_spans``)."""

from __future__ import annotations

import collections
import copy

import datasets

from mycelium_datasets import jsd_spans
from mycelium_datasets.builders.base import ArtifactBuilder
from mycelium_datasets.defaults import DEFAULT_TEACHER
from mycelium_datasets.provenance import model_identity


class JsdSpansBuilder(ArtifactBuilder):
    NAME = "jsd_spans"
    VERSION = datasets.Version(jsd_spans.VERSION)
    CONFIG_CLASS = jsd_spans.JsdSpansConfig
    FEATURES = jsd_spans.FEATURES
    UPSTREAM = ("cot_traces",)
    DISTRIBUTED = True
    DESCRIPTION = (
        "Each chain of thought cut into steps. One teacher-forced forward over prompt + CoT captures, for every CoT "
        "token, its head-mean attention row averaged over the selected layers; `jsd` is the Jensen-Shannon divergence "
        "between consecutive rows, `spans` are character ranges (derived from token offsets) cut by the configured "
        "segmenter, and `problem_attn` keeps each CoT token's attention to each problem token for `iaf_maps`."
    )
    LIMITATIONS = [
        "On the embedded 135M teacher, JSD peaks alone over-segment (the field guide's default setting gives about "
        "one boundary per 4 tokens); `jsd_clause` lets JSD choose among sentence and clause boundaries instead.",
        "Attention is captured from the model named in the trace's `teacher` column (or `capture_teacher`), in "
        "float32 on CPU and bfloat16 on GPU.",
    ]
    STAT_COLUMNS = ("segmenter", "span_status")
    INPUT_COLUMNS = jsd_spans.INPUT_COLUMNS
    TASK_CATEGORIES = ("text-generation",)
    LINEAGE_FIELDS = ("capture", "segmenter")

    def own_provenance(self, upstream: dict) -> dict:
        config = self.config
        captured = (
            [model_identity(config.capture_teacher)]
            if config.capture_teacher
            else copy.deepcopy(upstream.get("teachers")) or [model_identity(DEFAULT_TEACHER)]
        )
        return {
            "capture": {
                "teachers": captured,
                "layers": list(config.layers) or (f"first {config.first_layers}" if config.first_layers else "all"),
                "head_mean": True,
            },
            "segmenter": {
                "name": config.segmenter,
                "window": config.window,
                "polyorder": config.polyorder,
                "prominence_std": config.prominence_std,
            },
        }

    def _build(self, upstream, work_dir, info):
        traces = upstream["cot_traces"]
        result = jsd_spans.build_jsd_spans(traces, self.config, work_dir, info)
        if not info.is_main:
            return None
        rows_in = sum(len(d) for d in traces.values())
        counts = collections.Counter()
        tokens = spans = 0
        for d in result.values():
            for row_spans, offsets in zip(d["spans"], d["cot_token_offsets"]):
                counts[len(row_spans)] += 1
                spans += len(row_spans)
                tokens += len(offsets)
        extra = [
            f"spans per trace: mean {spans / max(1, sum(counts.values())):.2f}; "
            f"CoT tokens per span: {tokens / max(1, spans):.1f}"
        ]
        return result, rows_in, {}, extra
