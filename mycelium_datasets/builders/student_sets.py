"""Builders of the student training sets ``io_tags``, ``op_classes`` (schemas, config and transforms live in
``mycelium_datasets.student_sets``) and ``bindings`` (``mycelium_datasets.bindings``)."""

from __future__ import annotations

import collections

import datasets

from mycelium_datasets import bindings, student_sets
from mycelium_datasets.builders.base import ArtifactBuilder
from mycelium_datasets.provenance import model_identity


class _StudentSetBuilder(ArtifactBuilder):
    """What ``io_tags`` and ``op_classes`` share: made from ``op_pairs`` by the student sets' transforms, with the
    student tokenizer's identity in their lineage."""

    VERSION = datasets.Version(student_sets.VERSION)
    CONFIG_CLASS = student_sets.StudentSetsConfig
    UPSTREAM = ("op_pairs",)
    INPUT_COLUMNS = student_sets.INPUT_COLUMNS
    LINEAGE_FIELDS = ("student_tokenizer",)
    CPU_WORKERS = True

    def own_provenance(self, upstream: dict) -> dict:
        return {"student_tokenizer": model_identity(self.config.student_tokenizer)}


class IoTagsBuilder(_StudentSetBuilder):
    NAME = "io_tags"
    FEATURES = student_sets.IO_FEATURES
    DESCRIPTION = (
        "The tagger's training set: validated problems tokenized by the student tokenizer with offsets, each token "
        "labelled OP (1) when it overlaps an operation's region, else O (0) (IO, not BIO; `labels` is a list of "
        "ClassLabel O / OP); special tokens -1, a ClassLabel's no-label value, which a training loss must ignore."
    )
    LIMITATIONS = ["Only execution-validated problems give labels; the others are counted as drops by reason."]
    STAT_COLUMNS = ()
    TASK_CATEGORIES = ("token-classification",)

    def _build(self, upstream, work_dir, info):
        pairs = upstream["op_pairs"]
        result = student_sets.build_io_tags(pairs, self.config, self.num_proc)
        labels = collections.Counter(x for d in result.values() for row in d["labels"] for x in row)
        extra = [
            f"token labels: O {labels.get(0, 0)}, OP {labels.get(1, 0)}, "
            f"special tokens (no label) {labels.get(student_sets.NO_LABEL, 0)}"
        ]
        return result, sum(len(d) for d in pairs.values()), student_sets.drop_reasons(pairs), extra


class OpClassesBuilder(_StudentSetBuilder):
    NAME = "op_classes"
    FEATURES = student_sets.OP_FEATURES
    DESCRIPTION = (
        "The classifier's training set: one row per unit of a validated problem (its operation regions merged into "
        "the runs a perfect tagger finds): the unit's problem text (`text`) and its operations in the solution's "
        "order, joined by `+` (`label`: `mul`, `mul+sub`), a ClassLabel whose names are the sequences the rows hold: "
        "the training split's, most frequent first, then those only another split holds."
    )
    LIMITATIONS = ["Problem-text regions, never CoT text: that is what the classifier sees at inference."]
    STAT_COLUMNS = ("label",)
    TASK_CATEGORIES = ("text-classification",)

    @classmethod
    def schema(cls, features: datasets.Features) -> datasets.Features:
        label = features.get("label")
        return student_sets.op_features(label.names if isinstance(label, datasets.ClassLabel) else ())

    def _build(self, upstream, work_dir, info):
        pairs = upstream["op_pairs"]
        result = student_sets.build_op_classes(pairs, self.num_proc)
        total, dropped = student_sets.unit_drops(pairs)
        return result, total, dropped, []


class BindingsBuilder(ArtifactBuilder):
    NAME = "bindings"
    VERSION = datasets.Version(bindings.VERSION)
    CONFIG_CLASS = bindings.BindingsConfig
    FEATURES = bindings.FEATURES
    UPSTREAM = ("op_pairs",)
    INPUT_COLUMNS = bindings.INPUT_COLUMNS
    DESCRIPTION = (
        "The binder's training set: each validated problem's solution as pointers into its text. `quantities` are "
        "the numbers the problem writes, `units` the operation regions as a perfect tagger finds them, `ops` (in "
        "layout order: unit by unit) each name their unit, operation and operands as pointers (`quantity`, `op`: "
        "another operation's result, or `constant`: an entry of the constant vocabulary learned from the training "
        "split), and `answer_op` the operation whose value is the answer."
    )
    LIMITATIONS = [
        "Only execution-validated problems are bound; executing each binding reproduces op_pairs' executed answer.",
        "A constant outside the vocabulary keeps index -1: no student can predict it.",
    ]
    STAT_COLUMNS = ()
    TASK_CATEGORIES = ("token-classification", "text-classification")
    CPU_WORKERS = True

    def _build(self, upstream, work_dir, info):
        pairs = upstream["op_pairs"]
        result, dropped, vocabulary = bindings.build_bindings(pairs, self.config, self.num_proc)
        ops = [len(row) for d in result.values() for row in d["ops"]]
        pointers = collections.Counter(
            o["kind"] for d in result.values() for row in d["ops"] for op in row for o in op["operands"]
        )
        outside = sum(
            1
            for d in result.values()
            for row in d["ops"]
            for op in row
            for o in op["operands"]
            if o["kind"] == "constant" and o["index"] < 0
        )
        extra = [
            "constant vocabulary (from the train split, value x uses): "
            + (", ".join(f"{c} x{n}" for c, n in vocabulary) or "empty"),
            f"operations per problem: mean {sum(ops) / max(1, len(ops)):.2f}",
            f"operand pointers: {dict(pointers.most_common())}; constants outside the vocabulary: {outside}",
        ]
        return result, sum(len(d) for d in pairs.values()), dropped, extra
