"""Dataset cards generated from the code's own schema, version and lineage, and from the data."""

from __future__ import annotations

import collections
from importlib.metadata import PackageNotFoundError, version

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

from mycelium_datasets.cards import DATASET_CARD


def code_version() -> str:
    try:
        return f"mycelium-distill {version('mycelium-distill')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "mycelium-distill (source tree)"


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M"


def value_counts(dataset: datasets.DatasetDict, columns: tuple[str, ...]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Counts of each value of the given (categorical) columns over all splits, most common first."""
    out = []
    for column in columns:
        counter: collections.Counter = collections.Counter()
        for split in dataset.values():
            if column in split.column_names:
                feature = split.features[column]
                names = feature.names if isinstance(feature, datasets.ClassLabel) else None
                counter.update("null" if v is None else names[v] if names else str(v) for v in split[column])
        if counter:
            out.append((column, counter.most_common(12)))
    return out


def _dtype_text(feature) -> str:
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, datasets.List):
        return f"list<{_dtype_text(feature.feature)}>"
    if isinstance(feature, dict):
        return "{" + ", ".join(f"{k}: {_dtype_text(v)}" for k, v in feature.items()) + "}"
    return type(feature).__name__


def render_dataset_card(
    *,
    artifact: str,
    version_: str,
    description: str,
    dataset: datasets.DatasetDict,
    settings: dict,
    lineage: dict,
    fingerprint: str,
    rows_in: int,
    dropped: dict,
    stat_columns: tuple[str, ...] = ("status",),
    extra_stats: list[str] | None = None,
    limitations: list[str] | None = None,
    load_path: str = ".",
    data_files: dict[str, str] | None = None,
) -> str:
    """The README.md of an artifact folder: YAML metadata (configs, license, version, lineage) and a generated body."""
    n_rows = sum(len(d) for d in dataset.values())
    data_files = data_files or {split: f"data/{split}-*.parquet" for split in dataset}
    features = next(iter(dataset.values())).features
    card_data = DatasetCardData(
        language="en",
        license="mit",
        pretty_name=f"Mycelium {artifact}",
        task_categories=["text-generation", "token-classification"],
        size_categories=size_category(n_rows),
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": path} for split, path in data_files.items()],
                "default": True,
            }
        ],
        version=version_,
        mycelium={"artifact": artifact, "fingerprint": fingerprint, "code_version": code_version(), **lineage},
    )
    # `dataset_info` (features and split sizes) lets `load_dataset` restore the exact schema.
    info = datasets.DatasetInfo(features=features, splits=datasets.SplitDict())
    for split, d in dataset.items():
        info.splits.add(datasets.SplitInfo(name=split, num_examples=len(d), num_bytes=d.data.nbytes))
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    upstream = lineage.get("upstream") or {}
    upstream_text = (
        ", ".join(f"`{name}` v{u.get('version')} ({u.get('fingerprint', '')[:12]})" for name, u in upstream.items())
        or "its source"
    )
    card = DatasetCard.from_template(
        card_data,
        template_path=str(DATASET_CARD),
        artifact=artifact,
        version=version_,
        description=description,
        code_version=code_version(),
        upstream_text=upstream_text,
        fingerprint=fingerprint,
        settings=sorted((k, v) for k, v in settings.items()),
        columns=[(name, _dtype_text(feature)) for name, feature in features.items()],
        split_rows=[(split, len(d)) for split, d in dataset.items()],
        value_counts=value_counts(dataset, stat_columns),
        extra_stats=extra_stats or [],
        rows_in=rows_in,
        rows_out=n_rows,
        dropped=(", ".join(f"{k}: {v}" for k, v in dropped.items()) or "none"),
        limitations=limitations or ["None recorded."],
        load_path=load_path,
    )
    return str(card)
