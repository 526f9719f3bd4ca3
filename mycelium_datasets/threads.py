"""How many CPU threads the teacher generates with: the free cores, decided here, for each ``generate`` call.

Torch starts with one thread per physical core (or ``OMP_NUM_THREADS``). That is right on an idle machine and very
wrong on a busy one: every operator waits for all of its threads, so one thread that shares its core with another
process holds up each of the thousands of small operators a generated token runs. On our 2-core machine, with a
training job on both cores, the embedded teacher generated the same greedy tokens 3.5x to 4.7x slower at 2 threads
than at 1 (``benchmarks/bench_teacher_generation.py``, docs/benchmarks.md).

So teacher generation on CPU uses torch's count less the cores that other processes keep busy now (sampled from
``/proc/stat`` for a fifth of a second, this process asleep), at least one thread, and puts the count back after:

=====================================  =====================================================
environment                            threads for generation
=====================================  =====================================================
``MYCELIUM_GENERATION_THREADS=N``      ``N``
``OMP_NUM_THREADS`` set                torch's own count (``torchrun`` sets it per worker)
no ``/proc/stat`` (macOS, Windows)     torch's own count
otherwise                              torch's own count - round(cores busy), at least 1
=====================================  =====================================================

Only generation: its greedy tokens were the same at 1 and 2 threads (the teacher's logits bitwise equal), so the
choice changes its speed and not its output. Training is not like that (a student's weights after a few steps differ
in their last bits between 1 and 2 threads), so everything else keeps torch's own count and a run stays the same
run on the same machine whatever its load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

ENV = "MYCELIUM_GENERATION_THREADS"
SAMPLE_SECONDS = 0.2  # 20 clock ticks per core: enough to tell a busy core from an idle one; under 1% of a batch
PROC_STAT = Path("/proc/stat")


def choose_num_threads(available: int, busy_cores: float) -> int:
    """Threads for ``available`` cores of which other processes keep ``busy_cores`` busy: the free cores, rounded,
    at least 1 and at most ``available``."""
    return max(1, min(available, available - round(busy_cores)))


def _cpu_times() -> tuple[int, int] | None:
    """``(busy, total)`` clock ticks of all CPUs since boot, from the first line of ``/proc/stat``; None without
    one."""
    try:
        fields = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(seconds: float = SAMPLE_SECONDS) -> float | None:
    """The share of all CPUs' time (0 to 1) that other processes used over the next ``seconds`` (this process sleeps
    meanwhile); None where ``/proc/stat`` cannot be read."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(seconds)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def generation_threads() -> int:
    """The number of threads teacher generation uses now (the table in this module's docstring)."""
    value = os.environ.get(ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV}={value!r}: give a whole number of threads, 1 or more")
        return int(value)
    import torch

    available = torch.get_num_threads()  # OMP_NUM_THREADS, else one per physical core, unless the caller set it
    if os.environ.get("OMP_NUM_THREADS"):
        return available
    busy = busy_fraction()
    if busy is None:
        return available
    return choose_num_threads(available, busy * available)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block with ``n`` torch intra-op threads, then put back the count there was."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
