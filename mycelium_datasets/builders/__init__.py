"""The artifact registry: one versioned builder per artifact, in pipeline order.

Each builder class is its artifact's whole declaration (name, version, config class, features, upstream, input
columns, card facts, lineage fields and how to build it); the run, the cards, the report, the release and the CLI
iterate over :data:`BUILDERS` instead of restating any of it. ``get_builder(name)`` resolves a name with a clear
error.
"""

from mycelium_datasets.builders.base import ArtifactBuilder, UpstreamMissingError, load_artifact, write_artifact
from mycelium_datasets.builders.clause_regions import ClauseRegionsBuilder
from mycelium_datasets.builders.cot_traces import CotTracesBuilder
from mycelium_datasets.builders.iaf_maps import IafMapsBuilder
from mycelium_datasets.builders.jsd_spans import JsdSpansBuilder
from mycelium_datasets.builders.op_pairs import OpPairsBuilder
from mycelium_datasets.builders.problems import ProblemsBuilder
from mycelium_datasets.builders.student_sets import BindingsBuilder, IoTagsBuilder, OpClassesBuilder

# In pipeline order.
BUILDERS: dict[str, type[ArtifactBuilder]] = {
    builder.NAME: builder
    for builder in (
        ProblemsBuilder,
        CotTracesBuilder,
        JsdSpansBuilder,
        IafMapsBuilder,
        ClauseRegionsBuilder,
        OpPairsBuilder,
        IoTagsBuilder,
        OpClassesBuilder,
        BindingsBuilder,
    )
}


def get_builder(name: str) -> type[ArtifactBuilder]:
    if name not in BUILDERS:
        raise ValueError(f"unknown artifact {name!r}; valid choices: {', '.join(BUILDERS)}")
    return BUILDERS[name]


def lineage_order() -> tuple[str, ...]:
    """The provenance entries of a card's lineage, in pipeline order (each artifact's ``LINEAGE_FIELDS``)."""
    return tuple(dict.fromkeys(field for builder in BUILDERS.values() for field in builder.LINEAGE_FIELDS))


def config_classes() -> dict[str, type]:
    """Each artifact's config class (the student sets share one)."""
    return {name: builder.CONFIG_CLASS for name, builder in BUILDERS.items()}


__all__ = [
    "ArtifactBuilder",
    "BUILDERS",
    "UpstreamMissingError",
    "config_classes",
    "get_builder",
    "lineage_order",
    "load_artifact",
    "write_artifact",
]
