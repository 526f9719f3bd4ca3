"""The artifact pipeline: a plain, visible sequence of builders over one run folder.

Each builder skips itself when an identical artifact (same fingerprint) is already complete, and long stages resume
from their finished parts, so rerunning the same command after an interruption finishes the job without losing or
duplicating rows. The students and the end-to-end job (``mycelium run``) sit above this, in ``mycelium_models``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mycelium_datasets.builders import BUILDERS, get_builder
from mycelium_datasets.runner import process_info

logger = logging.getLogger(__name__)


def build(out_dir: str | Path, artifact: str, configs: dict[str, object], force: bool = False):
    """Build ``artifact``; upstream artifacts already in ``out_dir`` are used as they are, missing ones are built
    first with the given configs (in pipeline order). ``configs`` maps each artifact name to its config."""
    get_builder(artifact)
    # Under a distributed launch every process must see the same markers before deciding what to build.
    process_info().barrier()
    order = list(BUILDERS)
    for name in order[: order.index(artifact)]:
        upstream = BUILDERS[name](out_dir, configs[name])
        if upstream.read_marker() is None:
            logger.info("%s needs %s, which is missing in %s: building it first", artifact, name, out_dir)
            upstream.build()
    return BUILDERS[artifact](out_dir, configs[artifact]).build(force=force)


def build_artifacts(out_dir: str | Path, configs: dict[str, object]) -> tuple[dict, dict]:
    """Every artifact, in pipeline order (each skipped when already complete); returns the rows per split of each
    artifact and the seconds each took."""
    summary: dict = {}
    seconds: dict = {}
    process_info().barrier()
    for name, builder in BUILDERS.items():
        t = time.time()
        dataset = builder(out_dir, configs[name]).build()
        seconds[name] = round(time.time() - t, 1)
        if dataset is not None:
            summary[name] = {split: len(d) for split, d in dataset.items()}
    return summary, seconds
