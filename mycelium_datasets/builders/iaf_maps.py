"""Builder of the ``iaf_maps`` artifact (schema, config and transforms live in ``mycelium_datasets.iaf_maps``)."""

from __future__ import annotations

import datasets

from mycelium_datasets import iaf_maps
from mycelium_datasets.builders.base import ArtifactBuilder


class IafMapsBuilder(ArtifactBuilder):
    NAME = "iaf_maps"
    VERSION = datasets.Version(iaf_maps.VERSION)
    CONFIG_CLASS = iaf_maps.IafMapsConfig
    FEATURES = iaf_maps.FEATURES
    UPSTREAM = ("jsd_spans",)
    DESCRIPTION = (
        "Each CoT span mapped onto the problem text: `iaf` is the Input Attention Fraction of the span over the "
        "problem's tokens (sums to 1), `iaf_top` its heaviest problem tokens with character offsets into `problem`."
    )
    LIMITATIONS = [
        "IAF marks where the teacher looked, not the operands: numbers are matched by the operation parser."
    ]
    STAT_COLUMNS = ("span_status",)
    INPUT_COLUMNS = iaf_maps.INPUT_COLUMNS
    TASK_CATEGORIES = ("token-classification",)

    def _build(self, upstream, work_dir, info):
        spans = upstream["jsd_spans"]
        result = iaf_maps.build_iaf_maps(spans, self.config)
        return result, sum(len(d) for d in spans.values()), {}, []
