"""Builder of the ``clause_regions`` artifact (schema, config and transforms live in
``mycelium_datasets.clause_regions``)."""

from __future__ import annotations

import datasets

from mycelium_datasets import clause_regions
from mycelium_datasets.builders.base import ArtifactBuilder
from mycelium_datasets.provenance import spacy_identity


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
    INPUT_COLUMNS = clause_regions.INPUT_COLUMNS
    TASK_CATEGORIES = ("token-classification",)
    LINEAGE_FIELDS = ("spacy",)
    CPU_WORKERS = True

    def own_provenance(self, upstream: dict) -> dict:
        return {"spacy": spacy_identity(self.config.spacy_pipeline)}

    def _build(self, upstream, work_dir, info):
        maps = upstream["iaf_maps"]
        result = clause_regions.build_clause_regions(maps, self.config, self.num_proc)
        regions = [len(r) for d in result.values() for r in d["regions"]]
        extra = [f"regions per problem: mean {sum(regions) / max(1, len(regions)):.2f}"]
        return result, sum(len(d) for d in maps.values()), {}, extra
