"""The student training sets: ``io_tags`` (the tagger) and ``op_classes`` (the classifier), from validated problems.

Only problems whose operation DAG executed to the gold answer (``op_pairs.validated``) give labels: execution is the
verifier. Both sets are made of *problem text*, because that is all the students see at inference (the field
guide's "classifier on CoT text, inference on problem text" bug).

``io_tags``: the problem tokenized by the **student** tokenizer with offsets; each token is ``OP`` when it overlaps
the region of one of the problem's operations, else ``O`` (IO tagging, not BIO: any contiguous OP run is a region);
special tokens get ``-1``, datasets' "no label" of a ``ClassLabel`` (the tagger's training turns it into the
``-100`` its loss ignores). Columns: ``id``, ``problem``, ``input_ids``, ``offsets``, ``labels`` (a list of
``ClassLabel(names=["O", "OP"])``: ``features["labels"].feature.names`` is the tagger's ``id2label``).

``op_classes``: one row per **unit** (the operation regions merged into the runs a perfect IO tagger finds, see
:mod:`mycelium_datasets.dag`): ``id`` (problem id and unit index), ``text`` (the unit's text in the problem),
``label`` (its operations in the order the solution takes them, joined by ``+``: ``mul``, ``mul+sub``). A unit often
holds several operations ("got 1 bags of gum" holds mul, sub, div and floor), so the classifier names them all, and
the solver lays them out unit by unit exactly as the ``bindings`` artifact does. ``label`` is a ``ClassLabel`` whose
names are the sequences this build's rows hold (:func:`op_label_names`: the classifier's classes, in its order):
the operations are a closed vocabulary but their sequences are not, so the label set is learned from the data and
written with it, and the self-improving loop appends the sequences its rounds add (:func:`with_label_names`).

Rows of problems that were not validated are counted in the card as drops with their reason (``op_status``).
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field

import datasets

from .bindings import BindingError, bind
from .columns import require_columns
from .dag import units_from_regions
from .defaults import DEFAULT_BACKBONE, resolve_backbone
from .runner import map_batches

# 2.1.1: operations are executed with solve2 (a system of two linear equations, mycelium_datasets.systems); rows
# as before
# 2.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc;
# 2.0.0: op_classes has one row per unit labelled with its operation sequence (1.0.0: per operation)
# 2.1.2: problems reads the equation shape; rows of the other shapes as before
# 2.1.6: the runner's progress bars (one per stage and split, on a terminal); the same rows as 2.1.5
# 2.2.0: label sets are ClassLabels: io_tags.labels names O / OP (special tokens -1, was -100), op_classes.label
# names the build's operation sequences; cards: license and description in dataset_info, the run folder's card
# 2.2.1: both changes above together (two branches merged)

VERSION = "2.2.1"
LABEL_JOIN = "+"
IO_LABELS = ("O", "OP")
NO_LABEL = -1  # a special token: datasets' "no label" of a ClassLabel
INPUT_COLUMNS = ("id", "problem", "ops", "validated")

IO_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "problem": datasets.Value("string"),
        "input_ids": datasets.List(datasets.Value("int32")),
        "offsets": datasets.List(datasets.List(datasets.Value("int32"), length=2)),
        "labels": datasets.List(datasets.ClassLabel(names=list(IO_LABELS))),
    }
)
# The rows make_op_classes writes: each label as its text.
OP_TEXT_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
    }
)


def op_features(names) -> datasets.Features:
    """``op_classes``' schema with the label set ``names`` (operation sequences, see :func:`op_label_names`)."""
    return datasets.Features({**OP_TEXT_FEATURES, "label": datasets.ClassLabel(names=list(names))})


OP_FEATURES = op_features(())  # the declared shape: each build names its labels


@dataclass
class StudentSetsConfig:
    """Configuration of ``io_tags`` and ``op_classes``.

    Args:
        student_tokenizer (`str`, *optional*, defaults to `"all-minilm-l6-v2"`): tokenizer of the student backbone.
        max_length (`int`, *optional*, defaults to 256): longest tokenized problem (longer ones are truncated).
    """

    student_tokenizer: str = field(default=DEFAULT_BACKBONE, metadata={"help": "Student backbone tokenizer."})
    max_length: int = field(default=256, metadata={"help": "Longest tokenized problem for the tagger."})


@functools.lru_cache(maxsize=2)
def load_student_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_backbone(name))


def io_labels(offsets: list[tuple[int, int]], regions: list[tuple[int, int]], special: list[int]) -> list[int]:
    """OP (1) for tokens overlapping a region, O (0) otherwise, ``NO_LABEL`` (-1) for special tokens."""
    labels = []
    for (a, b), is_special in zip(offsets, special):
        if is_special or b <= a:
            labels.append(NO_LABEL)
        else:
            labels.append(int(any(a < r_end and b > r_start for r_start, r_end in regions)))
    return labels


def make_io_tags(batch: dict, *, student_tokenizer: str, max_length: int) -> dict:
    """``batch -> batch`` over validated ``op_pairs`` rows: the tagger's tokens and IO labels."""
    tokenizer = load_student_tokenizer(student_tokenizer)
    encoded = tokenizer(
        batch["problem"],
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=True,
        max_length=max_length,
    )
    out = {"id": batch["id"], "problem": batch["problem"], "input_ids": [], "offsets": [], "labels": []}
    for i, ops in enumerate(batch["ops"]):
        regions = sorted(
            {(op["region"]["char_start"], op["region"]["char_end"]) for op in ops if op["region"]["char_start"] >= 0}
        )
        offsets = [tuple(o) for o in encoded["offset_mapping"][i]]
        out["input_ids"].append(encoded["input_ids"][i])
        out["offsets"].append([list(o) for o in offsets])
        out["labels"].append(io_labels(offsets, regions, encoded["special_tokens_mask"][i]))
    return out


def unit_labels(binding: dict) -> list[str]:
    """Each unit's label: the operations of a binding's unit, in layout order, joined by ``+``."""
    return [
        LABEL_JOIN.join(op["op"] for op in binding["ops"] if op["unit"] == k) for k in range(len(binding["units"]))
    ]


def make_op_classes(batch: dict) -> dict:
    """``batch -> batch`` over validated ``op_pairs`` rows: one (unit text, operation sequence) row per unit."""
    out = {"id": [], "text": [], "label": []}
    for row_id, problem, ops in zip(batch["id"], batch["problem"], batch["ops"]):
        try:
            binding = bind(problem or "", ops, [])
        except BindingError:
            continue  # counted by the builder as a drop
        for k, (unit, label) in enumerate(zip(binding["units"], unit_labels(binding))):
            out["id"].append(f"{row_id}#unit{k}")
            out["text"].append(unit["text"])
            out["label"].append(label)
    return out


def unit_drops(pairs: datasets.DatasetDict) -> tuple[int, dict[str, int]]:
    """The units every problem's operation regions make (``op_classes``' rows in), and those left out, by reason:
    a problem not validated, or one whose DAG cannot be bound."""
    total, dropped = 0, collections.Counter()
    for d in pairs.values():
        for problem, ops, ok, status in zip(d["problem"], d["ops"], d["validated"], d["op_status"]):
            regions = [(o["region"]["char_start"], o["region"]["char_end"]) for o in ops]
            units = units_from_regions(problem or "", [(a, b) for a, b in regions if a >= 0])
            total += len(units)
            if not ok:
                dropped[f"unit of a problem not validated ({status})"] += len(units)
                continue
            try:
                bind(problem or "", ops, [])
            except BindingError as exc:
                dropped[f"unit of a problem that cannot be bound ({str(exc).split(':')[0]})"] += len(units)
    return total, dict(dropped)


def _validated(dataset: datasets.Dataset) -> datasets.Dataset:
    require_columns(dataset, INPUT_COLUMNS, stage="the student sets", upstream="op_pairs")
    return dataset.filter(lambda v: v, input_columns="validated", desc="validated problems")


def build_io_tags(
    pairs: datasets.DatasetDict, config: StudentSetsConfig, num_proc: int | None = None
) -> datasets.DatasetDict:
    """The tagger's set from every split of ``pairs`` (``op_pairs``), on ``num_proc`` processes (each loads the
    student tokenizer once; the result is the one process's, row for row)."""
    result = datasets.DatasetDict()
    for split, dataset in pairs.items():
        kept = _validated(dataset)
        result[split] = map_batches(
            kept,
            make_io_tags,
            batch_size=64,
            remove_columns=kept.column_names,
            features=IO_FEATURES,
            fn_kwargs={"student_tokenizer": config.student_tokenizer, "max_length": config.max_length},
            num_proc=num_proc,
            preload=functools.partial(load_student_tokenizer, config.student_tokenizer),
            desc=f"io_tags/{split}",
        )
    return result


def op_label_names(labels) -> list[str]:
    """``op_classes``' label set from each split's label texts (``{split: [label, ...]}``): the training split's
    operation sequences, most frequent first (ties by name), then those only the other splits hold, by name. These
    are the classifier's classes in its order; a sequence only a test split holds is one no model trained on this set
    predicts, so it counts as an error, never dropped."""
    counts = collections.Counter(labels.get("train", []))
    names = [label for label, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    for split, values in labels.items():
        if split != "train":
            names += sorted(set(values) - set(names))
    return names


def with_label_names(data: datasets.DatasetDict, rows: list[dict]) -> datasets.DatasetDict:
    """``data`` whose ``ClassLabel`` columns also name every label text of ``rows`` that they lack, appended, so each
    id keeps its meaning: how the self-improving loop adds rows of an operation sequence the run never held."""
    features = next(iter(data.values())).features.copy()
    widened = False
    for column, feature in features.items():
        if isinstance(feature, datasets.ClassLabel):
            new = sorted({r[column] for r in rows if isinstance(r[column], str)} - set(feature.names))
            if new:
                features[column] = datasets.ClassLabel(names=[*feature.names, *new])
                widened = True
    return data.cast(features) if widened else data


def build_op_classes(pairs: datasets.DatasetDict, num_proc: int | None = None) -> datasets.DatasetDict:
    """The classifier's set from every split of ``pairs`` (``op_pairs``), on ``num_proc`` processes; ``label`` is a
    ``ClassLabel`` over the sequences the rows hold (:func:`op_label_names`)."""
    result = datasets.DatasetDict()
    for split, dataset in pairs.items():
        kept = _validated(dataset)
        result[split] = map_batches(
            kept,
            make_op_classes,
            batch_size=64,
            remove_columns=kept.column_names,
            features=OP_TEXT_FEATURES,
            num_proc=num_proc,
            desc=f"op_classes/{split}",
        )
    return result.cast(op_features(op_label_names({split: d["label"] for split, d in result.items()})))


def drop_reasons(pairs: datasets.DatasetDict) -> dict[str, int]:
    """Problems left out of the student sets, counted by ``op_status`` (everything not validated)."""
    counts: dict[str, int] = {}
    for dataset in pairs.values():
        for status, ok in zip(dataset["op_status"], dataset["validated"]):
            if not ok:
                counts[f"not validated: {status}"] = counts.get(f"not validated: {status}", 0) + 1
    return counts
