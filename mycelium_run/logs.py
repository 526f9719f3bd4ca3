"""What a ``mycelium`` command prints on stderr, set once from ``--log_level`` for this package and the libraries.

| ``--log_level`` | this package | ``datasets`` / ``transformers`` / ``huggingface_hub`` | progress bars |
| --- | --- | --- | --- |
| ``debug`` | everything, Trainer's logs too | their INFO | theirs and ours |
| ``info`` (default) | one line per artifact and per student | their warnings | ours, on a terminal |
| ``warning`` | warnings | their warnings | none |
| ``error`` | errors | their errors | none |

"Ours" are one bar per stage and split (``mycelium_datasets.runner.progress_bar``) and one per student's training;
the libraries' bars (a Parquet write, a dataset read back, a model's weights loaded) are theirs. Python warnings go
through ``logging`` too, so ``--log_level error`` silences them as well.
"""

from __future__ import annotations

import logging
import os

LOG_LEVELS = ("debug", "info", "warning", "error")


def check_log_level(level: str) -> str:
    """``level`` in lower case; a ``ValueError`` naming the valid choices otherwise."""
    if str(level).lower() not in LOG_LEVELS:
        raise ValueError(f"--log_level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return str(level).lower()


def configure_logging(level: str = "info") -> None:
    """Set up logging for a command at ``level`` (see the table above): the root handler and format (with the rank
    under a distributed launcher), the libraries' verbosity and whether their progress bars show."""
    import datasets
    import huggingface_hub.utils
    import transformers

    ours = getattr(logging, check_log_level(level).upper())
    rank = f"/rank{os.environ['RANK']}" if "RANK" in os.environ else ""
    logging.basicConfig(level=ours, format=f"%(asctime)s [%(name)s{rank}] %(message)s", datefmt="%H:%M:%S")
    logging.captureWarnings(True)
    theirs = logging.INFO if ours == logging.DEBUG else max(ours, logging.WARNING)
    datasets.utils.logging.set_verbosity(theirs)
    transformers.utils.logging.set_verbosity(theirs)
    if ours == logging.DEBUG:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
    else:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()  # huggingface_hub's bars too
    huggingface_hub.utils.logging.set_verbosity(theirs)
