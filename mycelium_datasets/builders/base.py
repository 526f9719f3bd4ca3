"""The artifact builder: versioned, typed config, explicit ``Features``, cached by configuration, resumable.

datasets >= 4 runs no loading scripts, so an artifact is built by a class imported from this package (the same
guarantees as a ``datasets`` builder: ``VERSION``, a config dataclass, ``Features``, a cache identity made of
name/version/config/upstream/source) and written as a Hub dataset repo: ``data/<split>-*.parquet`` plus a generated
``README.md`` card, which ``datasets.load_dataset(folder)`` reads with no code of ours.

Layout of a run folder ``DIR``::

    DIR/README.md                                             the run's card: each artifact as a configuration
    DIR/<artifact>/README.md, DIR/<artifact>/data/*.parquet   the artifact (what a release uploads)
    DIR/.mycelium/<artifact>.json                             completion marker: fingerprint, config, counts
    DIR/.mycelium/work/<artifact>/<fingerprint>/              resumable parts while a build runs
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import ClassVar

import datasets
from datasets.fingerprint import Hasher
from huggingface_hub import DatasetCard

from mycelium_datasets import provenance
from mycelium_datasets.card import code_version, render_dataset_card, render_run_card, run_relative
from mycelium_datasets.run_folder import (
    ArtifactDamagedError,
    check_files,
    code_closure,
    code_hash,
    content_digest,
    file_records,
)
from mycelium_datasets.runner import ProcessInfo, process_info

logger = logging.getLogger(__name__)

# A split larger than this (in Arrow bytes) is written as several Parquet shards, as `Dataset.push_to_hub` does
# (its default, datasets.config.MAX_SHARD_SIZE): `data/<split>-<fingerprint>-00000-of-00003.parquet`, ...
MAX_SHARD_SIZE = "500MB"


class UpstreamMissingError(RuntimeError):
    """An upstream artifact has not been built (or not completely) in the run folder."""


def load_artifact(path: str | Path) -> datasets.DatasetDict:
    """Load an artifact folder exactly as a user would: ``datasets.load_dataset(folder)``."""
    return datasets.load_dataset(str(path))


class ArtifactBuilder(abc.ABC):
    """Base class: subclasses set the class attributes and implement :meth:`_build`."""

    # The artifact's whole declaration: everything the run, the cards, the report, the release and the CLI need to
    # know about it is read from here (they iterate over ``mycelium_datasets.builders.BUILDERS``).
    NAME: ClassVar[str]
    VERSION: ClassVar[datasets.Version]
    CONFIG_CLASS: ClassVar[type]
    FEATURES: ClassVar[datasets.Features]
    UPSTREAM: ClassVar[tuple[str, ...]] = ()
    INPUT_COLUMNS: ClassVar[tuple[str, ...]] = ()  # what it reads from its upstream artifact
    DESCRIPTION: ClassVar[str] = ""
    LIMITATIONS: ClassVar[list[str]] = []
    STAT_COLUMNS: ClassVar[tuple[str, ...]] = ("status",)
    TASK_CATEGORIES: ClassVar[tuple[str, ...]] = ("text-generation",)  # the Hub's task vocabulary, for the card
    LINEAGE_FIELDS: ClassVar[tuple[str, ...]] = ()  # the provenance entries it adds (see own_provenance)
    # True when every process of a distributed launch takes part in _build (else only the main process builds).
    DISTRIBUTED: ClassVar[bool] = False
    # True when _build spreads its rows over `num_proc` worker processes on this machine (the CPU-only stages).
    CPU_WORKERS: ClassVar[bool] = False

    def __init__(self, out_dir: str | Path, config=None, num_proc: int | None = None) -> None:
        """``num_proc`` (`int`, *optional*): worker processes of a ``CPU_WORKERS`` stage (``None`` or 1: this process
        alone). How an artifact is computed, not what it holds: it is not part of the fingerprint, the config or the
        card, so a folder built with one value is reused as it is by a run with another."""
        self.out_dir = Path(out_dir)
        self.config = config if config is not None else self.CONFIG_CLASS()
        if not isinstance(self.config, self.CONFIG_CLASS):
            raise TypeError(f"{self.NAME} needs a {self.CONFIG_CLASS.__name__}, got {type(self.config).__name__}")
        if num_proc is not None and num_proc < 1:
            raise ValueError(f"num_proc must be positive, got {num_proc}")
        self.num_proc = num_proc

    # -- locations ------------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.out_dir / self.NAME

    @property
    def marker_path(self) -> Path:
        return self.out_dir / ".mycelium" / f"{self.NAME}.json"

    def work_dir(self, fingerprint: str) -> Path:
        return self.out_dir / ".mycelium" / "work" / self.NAME / fingerprint[:16]

    # -- identity -------------------------------------------------------------------------------------------------

    def source_modules(self) -> tuple[str, ...]:
        """The modules of this package that make the artifact: the builder's module and everything it imports,
        followed transitively (see ``run_folder.code_closure``; no hand-kept list)."""
        return code_closure(type(self).__module__)

    def source_hash(self) -> str:
        """Hash of the code that makes this artifact (every module of :meth:`source_modules`)."""
        return code_hash(self.source_modules())

    def extra_identity(self) -> dict:
        """What else identifies the output (e.g. the content hash of an input file)."""
        return {}

    def fingerprint(self, upstream: dict[str, dict]) -> str:
        return Hasher.hash(
            {
                "name": self.NAME,
                "version": str(self.VERSION),
                "config": dataclasses.asdict(self.config),
                "upstream": {k: v["fingerprint"] for k, v in upstream.items()},
                # what the upstream files hold: an upstream rebuilt to different bytes (a damaged file rebuilt by a
                # nondeterministic stage) makes this artifact rebuild too; an identical rebuild does not
                "upstream_content": {k: v.get("content") for k, v in upstream.items()},
                "source": self.source_hash(),
                "extra": self.extra_identity(),
            }
        )

    # -- markers --------------------------------------------------------------------------------------------------

    def read_marker(self, name: str | None = None) -> dict | None:
        path = self.out_dir / ".mycelium" / f"{name or self.NAME}.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def damage(self, verify: bool = False) -> str | None:
        """What is wrong with the finished artifact's files (``None`` when they match its marker): sizes always,
        sha256 when ``verify``. An artifact with no marker is not damaged, it is missing."""
        marker = self.read_marker()
        if marker is None:
            return None
        return check_files(self.path, marker.get("files") or {"README.md": None}, verify=verify)

    def is_complete(self, fingerprint: str, verify: bool = False, rebuild: bool = True) -> bool:
        """Whether the artifact with this fingerprint is finished and its files are whole. Damaged files mean
        "rebuild" (one warning naming the file) or, when ``rebuild`` is off, :class:`ArtifactDamagedError`."""
        marker = self.read_marker()
        if not (marker and marker.get("fingerprint") == fingerprint):
            return False
        problem = self.damage(verify)
        if problem is None:
            return True
        if not rebuild:
            raise ArtifactDamagedError(
                f"{self.NAME} in {self.out_dir} is damaged ({problem}); rerun without --no_rebuild to rebuild it"
            )
        logger.warning("%s: %s; rebuilding it", self.NAME, problem)
        return False

    def upstream_markers(self) -> dict[str, dict]:
        markers = {}
        for name in self.UPSTREAM:
            marker = self.read_marker(name)
            if marker is None or not (self.out_dir / name / "README.md").is_file():
                raise UpstreamMissingError(
                    f"{self.NAME} needs the '{name}' artifact in {self.out_dir}; build it first: "
                    f"mycelium build {name} --out {self.out_dir}"
                )
            markers[name] = marker
        return markers

    # -- building -------------------------------------------------------------------------------------------------

    @classmethod
    def schema(cls, features: datasets.Features) -> datasets.Features:
        """The schema a split of this artifact must have, given the one it has: ``FEATURES``. An artifact whose label
        set is learned from its rows (``op_classes``) declares the shape and takes the label names the split has."""
        return cls.FEATURES

    @abc.abstractmethod
    def _build(self, upstream: dict[str, datasets.DatasetDict], work_dir: Path, info: ProcessInfo):
        """Return ``(DatasetDict, rows_in, dropped: dict[reason, count], extra_stats: list[str])`` on the main
        process (`None` on the others of a distributed launch)."""

    def build(self, force: bool = False, verify: bool = False, rebuild: bool = True) -> datasets.DatasetDict | None:
        """Build the artifact unless an identical one (same fingerprint, whole files) is already complete; return it.

        ``verify`` checks the finished files' sha256 (sizes are always checked); ``rebuild=False`` turns damaged
        files into :class:`ArtifactDamagedError` instead of a rebuild. Returns the artifact on the main process and
        `None` on the other processes of a distributed launch.
        """
        info = process_info() if self.DISTRIBUTED else ProcessInfo()
        outer = process_info() if not self.DISTRIBUTED and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
        if outer is not None and not outer.is_main:
            outer.barrier()
            return None
        markers = self.upstream_markers()
        fingerprint = self.fingerprint(markers)
        if not force and self.is_complete(fingerprint, verify=verify, rebuild=rebuild):
            logger.info("%s is up to date (%s); nothing to do", self.NAME, fingerprint[:12])
            if outer is not None:
                outer.barrier()
            return load_artifact(self.path) if info.is_main else None
        upstream = {name: load_artifact(self.out_dir / name) for name in self.UPSTREAM}
        started = time.time()
        built = self._build(upstream, self.work_dir(fingerprint), info)
        if info.is_main:
            dataset, rows_in, dropped, extra_stats = built
            rows_out = sum(len(d) for d in dataset.values())
            if rows_in != rows_out + sum(dropped.values()):
                raise RuntimeError(
                    f"{self.NAME}: rows in ({rows_in}) != rows out ({rows_out}) + counted drops ({dropped})"
                )
            for split, d in dataset.items():
                if d.features != self.schema(d.features):
                    raise RuntimeError(f"{self.NAME}/{split}: features differ from the declared schema")
            self._write(dataset, fingerprint, markers, rows_in, dropped, extra_stats, time.time() - started)
            shutil.rmtree(self.work_dir(fingerprint), ignore_errors=True)
        info.barrier()
        if outer is not None:
            outer.barrier()
        return load_artifact(self.path) if info.is_main else None

    def own_provenance(self, upstream: dict) -> dict:
        """The provenance entries this artifact adds (named in ``LINEAGE_FIELDS``) to its upstream's merged
        provenance ``upstream``: what it was made with (a source, teachers, a segmenter, a spaCy pipeline...)."""
        return {}

    def lineage(self, markers: dict[str, dict]) -> dict:
        """Upstream artifacts (version, fingerprint), this artifact's config, and the whole chain's provenance
        (source and license, teachers and revisions, generation, segmenter, spaCy; see ``provenance``)."""
        from mycelium_datasets.builders import lineage_order

        return {
            "upstream": {
                name: {k: m.get(k) for k in ("version", "fingerprint", "content")} for name, m in markers.items()
            },
            "config": dataclasses.asdict(self.config),
            "provenance": provenance.describe(markers, self.own_provenance, lineage_order()),
        }

    def _write(self, dataset, fingerprint, markers, rows_in, dropped, extra_stats, seconds) -> None:
        lineage = self.lineage(markers)
        write_artifact(
            self.out_dir,
            type(self),
            dataset,
            fingerprint=fingerprint,
            lineage=lineage,
            settings=dataclasses.asdict(self.config),
            rows_in=rows_in,
            dropped=dropped,
            extra_stats=extra_stats,
            marker={
                "config": dataclasses.asdict(self.config),
                "upstream": lineage["upstream"],
                "provenance": lineage["provenance"],
                "seconds": round(seconds, 2),
            },
        )


def num_shards(dataset: datasets.Dataset, max_shard_size: int | str = MAX_SHARD_SIZE) -> int:
    """How many Parquet shards a split is written as: push_to_hub's rule (one more than its Arrow size over
    ``max_shard_size``), at most one per row."""
    from datasets.utils.py_utils import convert_file_size_to_int

    table = dataset.data
    nbytes = table.nbytes * len(dataset) // max(1, table.num_rows)  # a selected view counts only its rows
    return max(1, min(len(dataset), int(nbytes / convert_file_size_to_int(max_shard_size)) + 1))


def write_artifact(
    out_dir: Path,
    declaration: type[ArtifactBuilder],
    dataset: datasets.DatasetDict,
    *,
    fingerprint: str,
    lineage: dict,
    settings: dict,
    rows_in: int,
    dropped: dict,
    extra_stats: list[str] | None = None,
    description: str | None = None,
    limitations: list[str] | None = None,
    marker: dict | None = None,
    max_shard_size: int | str = MAX_SHARD_SIZE,
) -> Path:
    """Write ``out_dir/<name>`` (Parquet + card, in a temporary folder swapped in) and its completion marker
    ``out_dir/.mycelium/<name>.json`` (last), for the artifact that ``declaration`` declares. Used by every builder
    and by the self-improving loop's rounds; ``description`` / ``limitations`` override the declaration's. A split
    above ``max_shard_size`` (bytes, or a size such as ``"500MB"``) is written as contiguous shards, in row order."""
    name = declaration.NAME
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = out_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    # The fingerprint is in the file names (and so in the card's `configs`): `load_dataset(folder)` caches a local
    # folder by its card and file patterns, not by content, so two run folders with the same layout would share
    # one cache entry otherwise (measured with datasets 5.2).
    data_files: dict[str, str | list[str]] = {}
    for split, d in dataset.items():
        n = num_shards(d, max_shard_size)
        paths = [f"data/{split}-{fingerprint[:12]}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for i, rel in enumerate(paths):
            (d if n == 1 else d.shard(n, i, contiguous=True)).to_parquet(str(tmp / rel))
        data_files[split] = paths[0] if n == 1 else paths
    card = render_dataset_card(
        artifact=name,
        version_=str(declaration.VERSION),
        description=declaration.DESCRIPTION if description is None else description,
        dataset=dataset,
        settings=settings,
        lineage=lineage,
        fingerprint=fingerprint,
        rows_in=rows_in,
        dropped=dropped,
        stat_columns=declaration.STAT_COLUMNS,
        extra_stats=extra_stats,
        limitations=declaration.LIMITATIONS if limitations is None else limitations,
        task_categories=list(declaration.TASK_CATEGORIES),
        load_path=run_relative(path, out_dir),
        data_files=data_files,
    )
    (tmp / "README.md").write_text(card, encoding="utf-8")
    files = file_records(tmp)  # what resume and `mycelium verify` check the folder against
    old = out_dir / f".{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    record = {
        "artifact": name,
        "version": str(declaration.VERSION),
        "fingerprint": fingerprint,
        **(marker or {}),
        "rows": {split: len(d) for split, d in dataset.items()},
        "files": files,
        "content": content_digest(files),
        "rows_in": rows_in,
        "dropped": dropped,
        "code_version": code_version(),
        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    marker_path = out_dir / ".mycelium" / f"{name}.json"
    marker_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_marker = marker_path.with_suffix(".json.tmp")
    tmp_marker.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp_marker, marker_path)
    write_run_card(out_dir)
    logger.info("wrote %s: %s", path, record["rows"])
    return path


def write_run_card(out_dir: str | Path) -> Path:
    """Write ``out_dir/README.md``, the run folder's card: every artifact it holds (a completion marker and a card)
    as a configuration, so ``load_dataset(out_dir, "io_tags")`` loads ``out_dir/io_tags`` and a bare
    ``load_dataset(out_dir)`` names the artifacts to choose from instead of reading every Parquet file as one
    dataset. Rewritten (atomically) after each artifact is written."""
    from mycelium_datasets.builders import BUILDERS

    out_dir = Path(out_dir)
    artifacts = [
        (name, DatasetCard.load(out_dir / name / "README.md").data)
        for name in BUILDERS
        if (out_dir / ".mycelium" / f"{name}.json").is_file() and (out_dir / name / "README.md").is_file()
    ]
    path = out_dir / "README.md"
    tmp = out_dir / ".README.md.tmp"
    tmp.write_text(render_run_card(run_relative(out_dir, out_dir), artifacts), encoding="utf-8")
    os.replace(tmp, path)
    return path
