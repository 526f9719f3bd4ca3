"""Where things live in a run folder: the one description of its layout.

::

    DIR/<artifact>/                          an artifact: Parquet files under data/ and its card (README.md)
    DIR/README.md                            the run folder's card: one config per artifact
    DIR/run_config.json                      the configs a `mycelium run` was given, split per artifact
    DIR/models/<student>/                    the trained students (what the solver and a release read)
    DIR/eval/, DIR/report/                   the evaluation and the run report
    DIR/.mycelium/<artifact>.json            an artifact's completion marker: fingerprint, config, counts, files
    DIR/.mycelium/lock, lock.json            the writer lock and who holds it
    DIR/.mycelium/work/...                   work in progress (resumable parts, students being trained,
                                             checkpoints): never released, removed when done

The orchestration (``mycelium_run``) reads and writes a folder through :class:`RunFolder`. Three versioned
modules still spell their part of it themselves, because a change to their code changes the fingerprint of what
they make (every artifact, every student would be rebuilt for a moved line): ``builders/base.py`` (markers, build
work folders), ``run_folder.py`` (the lock) and ``mycelium_models/train.py`` (checkpoints).
``tests/test_layout.py`` checks that they agree with this module; they adopt it at their next version bump.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunFolder"]


@dataclass(frozen=True)
class RunFolder:
    """The layout of the run folder at ``root`` (a path; nothing is created or read until a method is called)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    # -- what a user reads -------------------------------------------------------------------------------------------

    def artifact(self, name: str) -> Path:
        return self.root / name

    @property
    def models(self) -> Path:
        return self.root / "models"

    def student(self, kind: str) -> Path:
        return self.models / kind

    @property
    def run_config(self) -> Path:
        return self.root / "run_config.json"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report"

    # -- the bookkeeping ---------------------------------------------------------------------------------------------

    @property
    def state(self) -> Path:
        """``DIR/.mycelium``: markers, the lock and work in progress; its presence is what makes a run folder."""
        return self.root / ".mycelium"

    def is_run_folder(self) -> bool:
        return self.state.is_dir()

    def marker(self, artifact: str) -> Path:
        return self.state / f"{artifact}.json"

    def read_marker(self, artifact: str) -> dict | None:
        """An artifact's completion marker, or ``None`` when it is missing (or not JSON: a marker is written last
        and atomically, so a broken one means the artifact is not complete)."""
        try:
            return json.loads(self.marker(artifact).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def work(self, *parts: str) -> Path:
        """``DIR/.mycelium/work/<parts...>``: a folder for work in progress."""
        return self.state.joinpath("work", *parts)

    def checkpoints(self, kind: str) -> Path:
        """Where a student's checkpoints live while it trains: ``DIR/.mycelium/work/checkpoints-<student>``."""
        return self.work(f"checkpoints-{kind}")

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def lock_info(self) -> Path:
        return self.state / "lock.json"

    def read_run_config(self) -> dict:
        """The configs the run was given (``run_config.json``); a clear error when the folder has none."""
        try:
            return json.loads(self.run_config.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.root} has no run_config.json: `mycelium run --out {self.root}` makes one"
            ) from None
