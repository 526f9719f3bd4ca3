"""The input-column check every stage runs before it maps (distilabel's "declare what you read, check it first")."""

from __future__ import annotations

import datasets


class MissingColumnsError(ValueError):
    """A stage was given a dataset without the columns it reads."""


def require_columns(dataset: datasets.Dataset, columns: tuple[str, ...], *, stage: str, upstream: str) -> None:
    """Raise :class:`MissingColumnsError` naming every column of ``columns`` that ``dataset`` lacks, the stage that
    needs them and the upstream artifact that provides them."""
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise MissingColumnsError(
            f"{stage} needs input columns {missing} (the {upstream} artifact); got {dataset.column_names}"
        )
