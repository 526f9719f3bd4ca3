"""Builders of ``clause_regions``, ``op_pairs``, ``io_tags`` and ``op_classes`` (schemas, configs and transforms live
in ``mycelium_datasets.clause_regions``, ``.op_pairs`` and ``.student_sets``)."""

from __future__ import annotations

import collections

import datasets

from mycelium_datasets import arith, clause_regions, op_pairs, student_sets
from mycelium_datasets.builders.base import ArtifactBuilder


class ClauseRegionsBuilder(ArtifactBuilder):
    NAME = "clause_regions"
    VERSION = datasets.Version(clause_regions.VERSION)
    CONFIG_CLASS = clause_regions.ClauseRegionsConfig
    FEATURES = clause_regions.FEATURES
    UPSTREAM = ("iaf_maps",)
    DESCRIPTION = (
        "Each span's heaviest IAF content tokens expanded to the problem clauses that hold them (spaCy dependency "
        "parse: the subtree of the nearest clausal head without its clausal children), merged; per span "
        "(`span_regions`) and per problem (`regions`), as character ranges in the problem text."
    )
    LIMITATIONS = ["Punctuation and whitespace IAF tokens (attention sinks on small teachers) are not expanded."]
    STAT_COLUMNS = ("span_status",)

    def source_modules(self) -> list:
        return [*super().source_modules(), clause_regions]

    def _build(self, upstream, work_dir, info):
        maps = upstream["iaf_maps"]
        result = clause_regions.build_clause_regions(maps, self.config)
        regions = [len(r) for d in result.values() for r in d["regions"]]
        extra = [f"regions per problem: mean {sum(regions) / max(1, len(regions)):.2f}"]
        return result, sum(len(d) for d in maps.values()), {}, extra


class OpPairsBuilder(ArtifactBuilder):
    NAME = "op_pairs"
    VERSION = datasets.Version(op_pairs.VERSION)
    CONFIG_CLASS = op_pairs.OpPairsConfig
    FEATURES = op_pairs.FEATURES
    UPSTREAM = ("clause_regions",)
    DESCRIPTION = (
        "Each problem's operations parsed from its CoT (tier 1: plain arithmetic and LaTeX through a safe "
        "recursive-descent parser), each operand linked to a problem number, an earlier result or a constant, "
        "executed as a DAG with exact fractions; `validated` iff the last operation's value equals the gold answer."
    )
    LIMITATIONS = [
        "Tier 2 (the operation classifier as a parser fallback) is not plugged in yet: every op has parse_tier 1.",
        "Equations with variables (most of MATH) are not parsed; their problems get `no_ops` or `wrong_answer`.",
    ]
    STAT_COLUMNS = ("op_status", "validated")

    def source_modules(self) -> list:
        return [*super().source_modules(), op_pairs, arith]

    def _build(self, upstream, work_dir, info):
        regions = upstream["clause_regions"]
        result = op_pairs.build_op_pairs(regions, self.config)
        ops = collections.Counter(op["op"] for d in result.values() for row in d["ops"] for op in row)
        sources = collections.Counter(
            o["source"] for d in result.values() for row in d["ops"] for op in row for o in op["operands"]
        )
        extra = [f"operations: {dict(ops.most_common())}", f"operand provenance: {dict(sources.most_common())}"]
        return result, sum(len(d) for d in regions.values()), {}, extra


class IoTagsBuilder(ArtifactBuilder):
    NAME = "io_tags"
    VERSION = datasets.Version(student_sets.VERSION)
    CONFIG_CLASS = student_sets.StudentSetsConfig
    FEATURES = student_sets.IO_FEATURES
    UPSTREAM = ("op_pairs",)
    DESCRIPTION = (
        "The tagger's training set: validated problems tokenized by the student tokenizer with offsets, each token "
        "labelled OP (1) when it overlaps an operation's region, else O (0); special tokens -100 (IO, not BIO)."
    )
    LIMITATIONS = ["Only execution-validated problems give labels; the others are counted as drops by reason."]
    STAT_COLUMNS = ()

    def source_modules(self) -> list:
        return [*super().source_modules(), student_sets]

    def _build(self, upstream, work_dir, info):
        pairs = upstream["op_pairs"]
        result = student_sets.build_io_tags(pairs, self.config)
        labels = collections.Counter(x for d in result.values() for row in d["labels"] for x in row)
        extra = [f"token labels: O {labels.get(0, 0)}, OP {labels.get(1, 0)}, ignored {labels.get(-100, 0)}"]
        return result, sum(len(d) for d in pairs.values()), student_sets.drop_reasons(pairs), extra


class OpClassesBuilder(ArtifactBuilder):
    NAME = "op_classes"
    VERSION = datasets.Version(student_sets.VERSION)
    CONFIG_CLASS = student_sets.StudentSetsConfig
    FEATURES = student_sets.OP_FEATURES
    UPSTREAM = ("op_pairs",)
    DESCRIPTION = (
        "The classifier's training set: one row per located operation of a validated problem: its "
        "problem-text region (`text`) and the operation (`label`)."
    )
    LIMITATIONS = ["Problem-text regions, never CoT text: that is what the classifier sees at inference."]
    STAT_COLUMNS = ("label",)

    def source_modules(self) -> list:
        return [*super().source_modules(), student_sets]

    def _build(self, upstream, work_dir, info):
        pairs = upstream["op_pairs"]
        result = student_sets.build_op_classes(pairs)
        dropped: collections.Counter = collections.Counter()
        total = 0
        for d in pairs.values():
            for ops, ok, status in zip(d["ops"], d["validated"], d["op_status"]):
                total += len(ops)
                for op in ops:
                    if not ok:
                        dropped[f"op of a problem not validated ({status})"] += 1
                    elif op["region"]["char_start"] < 0 or not op["region"]["text"].strip():
                        dropped["op without a problem region"] += 1
        return result, total, dict(dropped), []
