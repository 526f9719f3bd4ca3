"""One versioned builder per artifact; ``get_builder(name)`` resolves a name with a clear error."""

from mycelium_datasets.builders.base import ArtifactBuilder, UpstreamMissingError, load_artifact
from mycelium_datasets.builders.cot_traces import CotTracesBuilder
from mycelium_datasets.builders.iaf_maps import IafMapsBuilder
from mycelium_datasets.builders.jsd_spans import JsdSpansBuilder
from mycelium_datasets.builders.problems import ProblemsBuilder
from mycelium_datasets.builders.regions_and_ops import (
    ClauseRegionsBuilder,
    IoTagsBuilder,
    OpClassesBuilder,
    OpPairsBuilder,
)

# In pipeline order.
BUILDERS: dict[str, type[ArtifactBuilder]] = {
    ProblemsBuilder.NAME: ProblemsBuilder,
    CotTracesBuilder.NAME: CotTracesBuilder,
    JsdSpansBuilder.NAME: JsdSpansBuilder,
    IafMapsBuilder.NAME: IafMapsBuilder,
    ClauseRegionsBuilder.NAME: ClauseRegionsBuilder,
    OpPairsBuilder.NAME: OpPairsBuilder,
    IoTagsBuilder.NAME: IoTagsBuilder,
    OpClassesBuilder.NAME: OpClassesBuilder,
}


def get_builder(name: str) -> type[ArtifactBuilder]:
    if name not in BUILDERS:
        raise ValueError(f"unknown artifact {name!r}; valid choices: {', '.join(BUILDERS)}")
    return BUILDERS[name]


__all__ = [
    "ArtifactBuilder",
    "BUILDERS",
    "CotTracesBuilder",
    "ProblemsBuilder",
    "UpstreamMissingError",
    "get_builder",
    "load_artifact",
]
