"""Resumable, shardable ``Dataset.map`` for long stages (teacher generation, attention capture).

A stage's input is cut, per process, into parts of ``part_size`` rows. Each part is mapped with ``Dataset.map``
(``features=`` given) and written atomically as one Parquet file (``*.tmp`` then ``os.replace``). A rerun after an
interruption loads the finished parts and computes only the missing ones: no row is lost or computed twice.

Under ``accelerate launch`` / ``torchrun`` each process takes its share with
``datasets.distributed.split_dataset_by_node`` (contiguous shards), writes its own parts, and the parts are merged in
(rank, part) order, which is the input order. Parts are named after the world size, so a resumed run must use the
same number of processes to reuse them (other parts are ignored, never mixed in).

The CPU-only stages (spaCy parses, CoT parsing and execution, the student sets) spread one machine's rows over
``num_proc`` worker processes with :func:`map_batches`, whose result is the one process's, batch for batch.

Both show one progress bar per stage and split (:func:`progress_bar`, named like ``jsd_spans/train``) on a terminal
while this package logs at INFO, ``mycelium``'s default; it counts the rows resumed from finished parts as done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets.distributed import split_dataset_by_node

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessInfo:
    """This process's rank among ``world_size`` processes; ``state`` is accelerate's ``PartialState`` when >1."""

    rank: int = 0
    world_size: int = 1
    state: object | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def process_info() -> ProcessInfo:
    """Rank and world size: from accelerate's ``PartialState`` when started by a distributed launcher, else 0/1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ProcessInfo()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return ProcessInfo(state.process_index, state.num_processes, state)


def progress_bar(total: int, desc: str, *, initial: int = 0, unit: str = " rows", shown: bool = True):
    """A ``tqdm`` bar over ``total`` items named ``desc``, shown only on a terminal (never in a log file) and only
    while this package logs at INFO or below (``mycelium --log_level``; a Python caller who configured no logging
    sees ``datasets``' own bars instead), never with ``shown=False``. It is cleared when closed: the stage's own log
    line says what was made."""
    from tqdm.auto import tqdm

    shown = shown and logger.isEnabledFor(logging.INFO)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, disable=None if shown else True)


class _Counted:
    """``function`` (``batch -> batch``), moving ``bar`` on by each batch's rows. It pickles, and so is hashed into
    ``datasets``' fingerprint, as the function alone: the bar is not part of what the map computes."""

    def __init__(self, function: Callable, bar=None) -> None:
        self.function, self.bar = function, bar

    def __call__(self, batch, **kwargs):
        out = self.function(batch, **kwargs)
        if self.bar is not None:
            self.bar.update(len(batch[next(iter(batch.keys()))]))
        return out

    def __reduce__(self):
        return (_Counted, (self.function,))


def _write_parquet_atomic(dataset: datasets.Dataset, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    dataset.to_parquet(str(tmp))
    os.replace(tmp, path)


def _read_parquet(path: Path, features: datasets.Features) -> datasets.Dataset:
    return datasets.Dataset.from_parquet(str(path), features=features, keep_in_memory=True)


def map_in_parts(
    dataset: datasets.Dataset,
    function: Callable,
    *,
    work_dir: str | os.PathLike,
    features: datasets.Features,
    fn_kwargs: dict | None = None,
    batch_size: int = 8,
    part_size: int = 64,
    info: ProcessInfo | None = None,
    desc: str = "map",
) -> datasets.Dataset:
    """Map ``function`` (batched, ``batch -> batch``) over this process's share of ``dataset``, resumably.

    Returns the full mapped dataset, in input order, on every process once all of them have finished their share.
    """
    info = info or ProcessInfo()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    shard = (
        split_dataset_by_node(dataset, rank=info.rank, world_size=info.world_size) if info.world_size > 1 else dataset
    )
    n_parts = -(-len(shard) // part_size)  # none for an empty share: a 0-row Parquet file does not read back
    prefix = f"w{info.world_size:03d}-r{info.rank:03d}"
    paths = [work_dir / f"{prefix}-p{part:05d}.parquet" for part in range(n_parts)]
    done = sum(min(part_size, len(shard) - part * part_size) for part, path in enumerate(paths) if path.is_file())
    who = f" (process {info.rank + 1} of {info.world_size})" if info.world_size > 1 else ""
    with progress_bar(len(shard), desc + who, initial=done) as bar:
        for part, path in enumerate(paths):
            if path.is_file():
                continue
            start, stop = part * part_size, min(len(shard), (part + 1) * part_size)
            mapped = shard.select(range(start, stop)).map(
                _Counted(function, bar),
                batched=True,
                batch_size=batch_size,
                fn_kwargs=fn_kwargs or {},
                features=features,
                desc=f"{desc}{who}, rows {start}-{stop} of {len(shard)}" if n_parts > 1 else desc + who,
                load_from_cache_file=False,
            )
            _write_parquet_atomic(mapped, path)
            logger.debug("%s: wrote %s (rows %d-%d of %d)", desc + who, path.name, start, stop, len(shard))
    info.barrier()
    parts: list[datasets.Dataset] = []
    for rank in range(info.world_size):
        rank_prefix = f"w{info.world_size:03d}-r{rank:03d}"
        files = sorted(work_dir.glob(f"{rank_prefix}-p*.parquet"))
        parts.extend(_read_parquet(f, features) for f in files)
    merged = (
        datasets.concatenate_datasets(parts)
        if parts
        else datasets.Dataset.from_dict({k: [] for k in features}, features=features)
    )
    if len(merged) != len(dataset):
        raise RuntimeError(
            f"{desc}: merged {len(merged)} rows from {work_dir} but the input has {len(dataset)}; "
            "remove the folder to recompute"
        )
    return merged


class WorkerDiedError(RuntimeError):
    """A worker process of :func:`map_batches` ended without a result (killed, out of memory, a crash in C code)."""


def _map_shard(shard: datasets.Dataset, function: Callable, kwargs: dict) -> datasets.Dataset:
    return shard.map(function, **kwargs)


def map_batches(
    dataset: datasets.Dataset,
    function: Callable,
    *,
    batch_size: int,
    features: datasets.Features,
    fn_kwargs: dict | None = None,
    remove_columns: list[str] | None = None,
    num_proc: int | None = None,
    preload: Callable[[], object] | None = None,
    desc: str = "map",
) -> datasets.Dataset:
    """``dataset.map(function, batched=True, ...)`` on ``num_proc`` processes, with the result of one process.

    ``function`` must be a top-level ``batch -> batch`` function (it is pickled to the workers); heavy objects it
    uses are loaded once per process by it (``lru_cache``), never per row. ``preload`` (the same ``lru_cache`` loader)
    is called here before the workers start, so workers forked from this process share what it loaded instead of
    each loading their own (a spaCy pipeline is about 0.5 s of CPU). ``num_proc`` of ``None`` or 1 is
    ``dataset.map`` in this process. Otherwise the rows are cut into contiguous shards of whole batches, one per
    worker, so every batch the function sees and every Arrow record batch of the result is the one a single process
    makes (and the Parquet files written from it are the same bytes); the shards are joined in input order. An
    exception in a worker is raised here with the worker's traceback; a worker that dies raises
    :class:`WorkerDiedError` naming the stage and its rows, never a hang.
    """
    kwargs = {
        "batched": True,
        "batch_size": batch_size,
        "fn_kwargs": fn_kwargs or {},
        "features": features,
        "remove_columns": remove_columns,
        # datasets' map cache knows the function by name, not the code it calls: after an edit to a helper it would
        # hand back the old rows under the artifact's new fingerprint. The artifact's own fingerprint is the cache.
        "load_from_cache_file": False,
    }
    n_batches = -(-len(dataset) // batch_size)
    workers = min(num_proc or 1, n_batches)
    if workers <= 1:
        with progress_bar(len(dataset), desc) as bar:
            return dataset.map(_Counted(function, bar), desc=desc, **kwargs)
    if preload is not None:
        preload()
    bounds = [min(len(dataset), batch_size * (n_batches * k // workers)) for k in range(workers + 1)]
    shards = [(a, b) for a, b in zip(bounds, bounds[1:])]
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        futures = [
            pool.submit(
                _map_shard, dataset.select(range(a, b)), function, {**kwargs, "desc": f"{desc} [rows {a}-{b}]"}
            )
            for a, b in shards
        ]
        parts = []
        with progress_bar(len(dataset), desc) as bar:  # moves as each worker's shard comes back
            for (a, b), future in zip(shards, futures):
                try:
                    parts.append(future.result())
                except BrokenProcessPool as exc:
                    raise WorkerDiedError(
                        f"{desc}: a worker process died before rows {a}-{b} of {len(dataset)} came back (killed, "
                        "out of memory, or a crash in compiled code); rerun with num_proc=1 to see the error in this "
                        "process"
                    ) from exc
                bar.update(b - a)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return datasets.concatenate_datasets(parts)
