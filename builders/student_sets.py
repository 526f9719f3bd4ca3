"""Builders of the student training sets ``io_tags`` and ``op_classes`` (schemas, config and transforms live in
``mycelium_datasets.student_sets``)."""

from __future__ import annotations

import collections

import datasets

from mycelium_datasets import student_sets
from mycelium_datasets.builders.base import ArtifactBuilder
from mycelium_datasets.provenance import model_identity


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
    TASK_CATEGORIES = ("token-classification",)
    INPUT_COLUMNS = student_sets.INPUT_COLUMNS
    LINEAGE_FIELDS = ("student_tokenizer",)

    def own_provenance(self, upstream: dict) -> dict:
        return {"student_tokenizer": model_identity(self.config.student_tokenizer)}

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
    TASK_CATEGORIES = ("text-classification",)
    INPUT_COLUMNS = student_sets.INPUT_COLUMNS
    LINEAGE_FIELDS = ("student_tokenizer",)

    def own_provenance(self, upstream: dict) -> dict:
        return {"student_tokenizer": model_identity(self.config.student_tokenizer)}

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
