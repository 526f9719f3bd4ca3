"""Builder of the ``op_pairs`` artifact (schema and config in ``mycelium_datasets.op_pairs``; the operation graph in
``mycelium_datasets.op_graph``)."""

from __future__ import annotations

import collections

import datasets

from mycelium_datasets import op_pairs
from mycelium_datasets.builders.base import ArtifactBuilder
from mycelium_datasets.provenance import spacy_identity


class OpPairsBuilder(ArtifactBuilder):
    NAME = "op_pairs"
    VERSION = datasets.Version(op_pairs.VERSION)
    CONFIG_CLASS = op_pairs.OpPairsConfig
    FEATURES = op_pairs.FEATURES
    UPSTREAM = ("clause_regions",)
    DESCRIPTION = (
        "Each problem's operations parsed from its CoT (tier 1: plain arithmetic and LaTeX through a safe "
        "recursive-descent parser; tier 2: an equation in one unknown, linear or polynomial, solved exactly, and, "
        "where a trace does not validate otherwise, two linear equations in two unknowns solved as a system; tier 3, "
        "where students exist: a step no parser reads, read with the operation classifier), each "
        "operand linked to a problem number, an earlier result or a constant, executed as a DAG with exact values "
        "(fractions, or radicals and pi built with sympy from the parse tree, written as LaTeX); `validated` iff the "
        "last operation's value equals the gold answer."
    )
    LIMITATIONS = [
        "Tier 3 (a CoT step no parser reads, read with the operation classifier) needs trained students, which do "
        "not exist when this artifact is built: here every parse_tier is 1 or 2; `mycelium loop` reads its mop-up "
        "CoTs with tier 3.",
        "Trigonometry, complex numbers, systems beyond two linear equations in two unknowns, modular arithmetic and "
        "answers reached in words are not parsed; such problems get `no_ops` or `wrong_answer`.",
    ]
    STAT_COLUMNS = ("op_status", "validated")
    INPUT_COLUMNS = op_pairs.INPUT_COLUMNS
    TASK_CATEGORIES = ("token-classification", "text-classification")
    LINEAGE_FIELDS = ("op_spacy",)
    CPU_WORKERS = True

    def own_provenance(self, upstream: dict) -> dict:
        return {"op_spacy": spacy_identity(self.config.op_spacy_pipeline)}

    def _build(self, upstream, work_dir, info):
        regions = upstream["clause_regions"]
        result = op_pairs.build_op_pairs(regions, self.config, self.num_proc)
        ops = collections.Counter(op["op"] for d in result.values() for row in d["ops"] for op in row)
        sources = collections.Counter(
            o["source"] for d in result.values() for row in d["ops"] for op in row for o in op["operands"]
        )
        tiers = collections.Counter(op["parse_tier"] for d in result.values() for row in d["ops"] for op in row)
        extra = [
            f"operations: {dict(ops.most_common())}",
            f"operand provenance: {dict(sources.most_common())}",
            f"operations by parse tier: {dict(sorted(tiers.items()))}",
        ]
        return result, sum(len(d) for d in regions.values()), {}, extra
