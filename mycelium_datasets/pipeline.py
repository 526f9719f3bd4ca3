"""The artifact pipeline: a plain, visible sequence of builders over one run folder.

Each builder skips itself when an identical artifact (same fingerprint) is already complete, and long stages resume
from their finished parts, so rerunning the same command after an interruption finishes the job without losing or
duplicating rows; a finished artifact whose files no longer match its completion marker is rebuilt, and one process
at a time writes a run folder (``run_folder``). The students and the end-to-end job (``mycelium run``) sit above
this, in ``mycelium_models``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mycelium_datasets.builders import BUILDERS, get_builder
from mycelium_datasets.run_folder import ArtifactDamagedError, RunLock
from mycelium_datasets.runner import process_info

logger = logging.getLogger(__name__)


def build(
    out_dir: str | Path,
    artifact: str,
    configs: dict[str, object],
    force: bool = False,
    verify: bool = False,
    rebuild: bool = True,
    wait: bool = True,
    num_proc: int | None = None,
):
    """Build ``artifact``; upstream artifacts already in ``out_dir`` are used as they are, missing (or damaged) ones
    are built first with the given configs (in pipeline order). ``configs`` maps each artifact name to its config.
    Holds the run folder's lock throughout (``wait=False``: fail at once if another process writes there).
    ``num_proc``: worker processes for the CPU-only stages (``CPU_WORKERS``); the artifacts are the same bytes with
    any value, and an artifact built with one is up to date for another."""
    get_builder(artifact)
    with RunLock(out_dir, wait=wait):
        # Under a distributed launch every process must see the same markers before deciding what to build.
        process_info().barrier()
        order = list(BUILDERS)
        for name in order[: order.index(artifact)]:
            upstream = BUILDERS[name](out_dir, configs[name], num_proc=num_proc)
            if upstream.read_marker() is None:
                logger.info("%s needs %s, which is missing in %s: building it first", artifact, name, out_dir)
                upstream.build(verify=verify, rebuild=rebuild)
            elif problem := upstream.damage(verify):
                if not rebuild:
                    raise ArtifactDamagedError(
                        f"{name} in {out_dir} is damaged ({problem}); rerun without --no_rebuild to rebuild it"
                    )
                logger.warning("%s: %s; rebuilding it", name, problem)
                upstream.build(force=True, verify=verify, rebuild=rebuild)
        builder = BUILDERS[artifact](out_dir, configs[artifact], num_proc=num_proc)
        return builder.build(force=force, verify=verify, rebuild=rebuild)


def build_artifacts(
    out_dir: str | Path,
    configs: dict[str, object],
    verify: bool = False,
    rebuild: bool = True,
    wait: bool = True,
    num_proc: int | None = None,
) -> tuple[dict, dict]:
    """Every artifact, in pipeline order (each skipped when already complete and whole); returns the rows per split
    of each artifact and the seconds each took. Holds the run folder's lock throughout. ``num_proc`` as in
    :func:`build`."""
    summary: dict = {}
    seconds: dict = {}
    with RunLock(out_dir, wait=wait):
        process_info().barrier()
        for name, builder in BUILDERS.items():
            t = time.time()
            dataset = builder(out_dir, configs[name], num_proc=num_proc).build(verify=verify, rebuild=rebuild)
            seconds[name] = round(time.time() - t, 1)
            if dataset is not None:
                summary[name] = {split: len(d) for split, d in dataset.items()}
    return summary, seconds


def verify_folder(out_dir: str | Path) -> dict[str, str | None]:
    """Each artifact's state in ``out_dir``: ``None`` when its files match the sha256 its marker recorded and it was
    built from its upstream's current content, ``"not built"``, or what is wrong. Reads only; takes no lock."""
    report: dict[str, str | None] = {}
    markers: dict[str, dict] = {}
    for name, builder_class in BUILDERS.items():
        builder = builder_class(out_dir)
        marker = builder.read_marker()
        if marker is None:
            report[name] = "not built"
            continue
        markers[name] = marker
        report[name] = builder.damage(verify=True)
        if report[name] is None:
            for up, recorded in (marker.get("upstream") or {}).items():
                current = (markers.get(up) or {}).get("content")
                if recorded.get("content") and current and recorded["content"] != current:
                    report[name] = f"built from other {up} content than is there now"
                    break
    return report
