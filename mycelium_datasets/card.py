"""Dataset cards generated from the code's own schema, version and lineage, and from the data."""

from __future__ import annotations

import collections
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

from mycelium_datasets.cards import DATASET_CARD, RUN_CARD
from mycelium_datasets.provenance import combine_licenses, lineage_licenses


def code_version() -> str:
    try:
        return f"mycelium-distill {version('mycelium-distill')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "mycelium-distill (source tree)"


def run_relative(folder: str | Path, run_dir: str | Path) -> str:
    """How a card or a report names a folder of a run: from the folder that holds the run folder
    (``run1/io_tags``, ``run1/models``), never by its absolute path, which is this machine's and means nothing on the
    Hub or on another machine. A folder outside the run folder is named by its own name."""
    folder, run_dir = Path(folder).resolve(), Path(run_dir).resolve()
    try:
        return folder.relative_to(run_dir.parent).as_posix()
    except ValueError:
        return folder.name


# The Hub's size categories (``datasets/utils/resources/size_categories.json``), each with its upper bound in rows.
SIZE_CATEGORIES = (
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)


def size_category(n: int) -> str:
    """The Hub's size category of ``n`` rows."""
    for bound, label in SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1T"


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


TAGS = ["mycelium", "math", "math-word-problems", "chain-of-thought"]


def _dtype_text(feature) -> str:
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, datasets.ClassLabel):
        return f"class_label<{', '.join(feature.names)}>"
    if isinstance(feature, datasets.List):
        return f"list<{_dtype_text(feature.feature)}>"
    if isinstance(feature, dict):
        return "{" + ", ".join(f"{k}: {_dtype_text(v)}" for k, v in feature.items()) + "}"
    return type(feature).__name__


def _compact(value) -> str:
    """A lineage value as one readable line."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_compact(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "; ".join(_compact(v) for v in value) or "none"
    return str(value)


def lineage_lines(lineage: dict) -> list[tuple[str, str]]:
    """(what, description) rows of the card's lineage table, in pipeline order."""
    return [
        (key, _compact(value).replace("|", "\\|").replace("\n", " "))
        for key, value in lineage.items()
        if key != "upstream"
    ]


def data_statistics(dataset: datasets.DatasetDict) -> list[str]:
    """Statistics every artifact with such columns gets: validated share, spans per trace."""
    lines = []
    columns = next(iter(dataset.values())).column_names
    if "validated" in columns:
        flags = [v for d in dataset.values() for v in d["validated"]]
        if flags:
            lines.append(f"validated: {sum(flags)}/{len(flags)} problems ({sum(flags) / len(flags):.1%})")
    if "spans" in columns:
        counts = [len(s) for d in dataset.values() for s in d["spans"]]
        if counts:
            lines.append(
                f"spans per trace: mean {sum(counts) / len(counts):.2f}, min {min(counts)}, max {max(counts)}"
            )
    return lines


def info_license(license_meta: dict, parts: list) -> str:
    """The license as ``DatasetInfo.license`` holds it: the card's one license (``apache-2.0``), or, when the parts'
    terms differ, ``other`` followed by each part's terms (``DatasetInfo`` has no ``license_name``)."""
    if "license_name" not in license_meta:
        return license_meta["license"]
    return f"{license_meta['license']} ({license_meta['license_name']}): " + "; ".join(part.line() for part in parts)


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
    task_categories: list[str] | None = None,
    load_path: str = ".",
    data_files: dict[str, str | list[str]] | None = None,
) -> str:
    """The README.md of an artifact folder: YAML metadata (configs, license, version, lineage) and a generated body.
    ``data_files`` names each split's Parquet file (or its shards, in order); default: ``data/<split>-*.parquet``."""
    n_rows = sum(len(d) for d in dataset.values())
    data_files = data_files or {split: f"data/{split}-*.parquet" for split in dataset}
    features = next(iter(dataset.values())).features
    chain = {"upstream": lineage.get("upstream") or {}, **(lineage.get("provenance") or {})}
    # the terms of everything whose output the rows hold: the problem source, and the teachers and captured models
    licenses = lineage_licenses(chain)
    license_meta = combine_licenses(licenses)
    source_hub_id = (chain.get("source") or {}).get("hub_id")
    card_data = DatasetCardData(
        language=["en"],
        pretty_name=f"Mycelium {artifact}",
        task_categories=task_categories or ["text-generation"],
        tags=TAGS,
        size_categories=[size_category(n_rows)],
        source_datasets=[source_hub_id] if source_hub_id else None,
        **license_meta,
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": path} for split, path in data_files.items()],
                "default": True,
                # a builder parameter of the config: `load_dataset` sets each split's `info.version` from it (the
                # card's top-level `version` and its `dataset_info` are not read back into `info.version`)
                "version": version_,
            }
        ],
        version=version_,
        mycelium={
            "artifact": artifact,
            "fingerprint": fingerprint,
            "code_version": code_version(),
            "config": lineage.get("config") or {},
            "lineage": chain,
        },
    )
    # `dataset_info` (features and split sizes) lets `load_dataset` restore the exact schema.
    info = datasets.DatasetInfo(features=features, splits=datasets.SplitDict())
    for split, d in dataset.items():
        info.splits.add(datasets.SplitInfo(name=split, num_examples=len(d), num_bytes=d.data.nbytes))
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    # `to_dataset_card_data` writes only the schema and the sizes, while `load_dataset` reads every `DatasetInfo`
    # field it finds under `dataset_info` (datasets' `DatasetInfo._from_yaml_dict`): with these, `ds.info.license`
    # and `ds.info.description` say what the card says
    card_data["dataset_info"].update(license=info_license(license_meta, licenses), description=description)
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
        # status counts on every card whose artifact has a `status` column
        value_counts=value_counts(
            dataset,
            stat_columns if "status" in stat_columns or "status" not in features else ("status", *stat_columns),
        ),
        extra_stats=[
            line
            for line in data_statistics(dataset)
            if not any(e.startswith(line.split(":")[0]) for e in extra_stats or [])
        ]
        + list(extra_stats or []),
        lineage=lineage_lines(chain),
        license=license_meta["license"]
        if "license_name" not in license_meta
        else f"other ({license_meta['license_name']})",
        license_parts=[part.line() for part in licenses],
        rows_in=rows_in,
        rows_out=n_rows,
        dropped=(", ".join(f"{k}: {v}" for k, v in dropped.items()) or "none"),
        limitations=limitations or ["None recorded."],
        load_path=load_path,
    )
    return str(card)


def _under(folder: str, path: str | list[str]) -> str | list[str]:
    """A card's data file path (or list of shard paths) as seen from the folder above: ``folder/path``."""
    return [f"{folder}/{p}" for p in path] if isinstance(path, list) else f"{folder}/{path}"


def render_run_card(run_name: str, artifacts: list[tuple[str, DatasetCardData]]) -> str:
    """The README.md of a run folder: each built artifact (``(name, its card's data)``, in pipeline order) as a
    configuration whose ``data_files`` are the artifact's own, with its ``dataset_info``. No configuration is the
    default, so ``load_dataset(run_folder)`` stops with datasets' own error naming the artifacts to choose from, and
    ``load_dataset(run_folder, name)`` loads the same rows, schema and info as ``load_dataset(run_folder/name)``."""
    configs, infos, rows = [], [], []
    for name, data in artifacts:
        config = dict((data.get("configs") or [{}])[0])
        config.pop("default", None)
        config["config_name"] = name
        config["data_files"] = [
            {"split": f["split"], "path": _under(name, f["path"])} for f in config.get("data_files") or []
        ]
        configs.append(config)
        info = dict(data.get("dataset_info") or {})
        infos.append({"config_name": name, **{k: v for k, v in info.items() if k != "config_name"}})
        splits = ", ".join(f"{s['name']} {s['num_examples']}" for s in info.get("splits") or [])
        rows.append((name, data.get("version"), splits, data.get("license")))
    card_data = DatasetCardData(configs=configs, dataset_info=infos, tags=TAGS)
    return str(
        DatasetCard.from_template(
            card_data,
            template_path=str(RUN_CARD),
            run_name=run_name,
            first=artifacts[0][0] if artifacts else "problems",
            artifacts=rows,
        )
    )
