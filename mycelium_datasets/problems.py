"""The ``problems`` artifact: one row per math word problem, from any supported source.

Sources (``ProblemsConfig.source``):

- ``gsm_symbolic`` (default): reasoning-gym's generator of GSM8K-derived templates, deterministic by ``seed``; keeps
  the template index and the reference CoT; ``metadata.variables`` (the true intermediate values) go to ``meta_json``.
- a ``FILE.jsonl``: one problem per line, in the GSM8K shape (``question``, ``answer`` ending in ``#### N``), the
  MATH shape (``problem``, ``solution`` with ``\\boxed{}``, optional ``answer``) or the plain shape (``problem``,
  ``answer``, optional ``solution`` and ``id``) or the equation shape (``problem``, ``answer``, ``equation`` and
  no ``solution``: MAWPS's ``x=56*9``, ASDiv's ``7+2=9``; the reference CoT is written from the equation one step a
  line, :mod:`mycelium_datasets.worked`); the shape is recognized per line.
- ``gsm8k`` / ``math500``: the Hub datasets ``openai/gsm8k`` (``main``) and ``HuggingFaceH4/MATH-500``;
- any other ``org/name``: a Hub dataset id, read with ``datasets.load_dataset``.
- several of these separated by commas (a YAML config may give a list): a **mix**, read one after the other (``limit``
  applies to each), each row keeping its own ``source`` and its own split rule; ids must be unique across the mix.

Every input row becomes an output row. Rows that cannot be used keep a ``status`` other than ``ok`` and a
``status_reason``; nothing is dropped. Rows are split into ``train`` and ``test`` by template when the source has
templates (so a student never sees its test templates), else by a stable hash of the id.

Output columns: ``id``, ``source``, ``problem``, ``answer`` (normalized gold, string, null when unreadable),
``solution`` (reference CoT, may be null), ``answer_raw``, ``template`` (-1 when none), ``shape``, ``status``,
``status_reason``, ``meta_json`` (JSON object as text).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from .answers import normalize_gold
from .defaults import DEFAULT_SOURCE, hub_offline
from .worked import solution_from_equation

logger = logging.getLogger(__name__)

# 1.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc
# 1.2.0: the equation shape (MAWPS, ASDiv): a reference CoT written from the equation, one step a line
# 1.3.3: the runner's progress bars (one per stage and split, on a terminal); the same rows as 1.3.2
# 1.3.3: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 1.3.4: quiet progress bars and the cards' dataset_info licence together (two branches merged)
VERSION = "1.3.4"

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "problem": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "solution": datasets.Value("string"),
        "answer_raw": datasets.Value("string"),
        "template": datasets.Value("int32"),
        "shape": datasets.Value("string"),
        "status": datasets.Value("string"),
        "status_reason": datasets.Value("string"),
        "meta_json": datasets.Value("string"),
    }
)

STATUSES = ("ok", "missing_answer", "unparseable_answer", "empty_problem", "invalid_row", "invalid_json")

# Named Hub sources: name -> (hub id, config, split, shape)
HUB_SOURCES = {
    "gsm8k": ("openai/gsm8k", "main", "train", "gsm8k"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "math"),
}
GENERATED_SOURCES = ("gsm_symbolic",)

# reasoning-gym appends an instruction to every gsm_symbolic question; it is not part of the problem.
_GSM_SYMBOLIC_SUFFIX = re.compile(r"\s*Give the result as your final answer\. Do not include units\.\s*$")
# A JSON escape of a UTF-16 surrogate: valid in pairs (an escaped emoji), unstorable alone ("\\ud800").
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class SourceError(ValueError):
    """A problem source cannot be read; the message names the source and what to do."""


@dataclass
class ProblemsConfig:
    """Configuration of the ``problems`` artifact.

    Args:
        source (`str`, *optional*, defaults to `"gsm_symbolic"`):
            ``gsm_symbolic``, ``gsm8k``, ``math500``, a path to a ``.jsonl`` file, or a Hub dataset id ``org/name``;
            several, separated by commas, mix them.
        limit (`int`, *optional*):
            Keep only the first ``limit`` problems of the source (of each source of a mix; for ``gsm_symbolic``:
            generate that many).
        size (`int`, *optional*, defaults to 200):
            Number of ``gsm_symbolic`` problems to generate when no ``limit`` is given.
        seed (`int`, *optional*, defaults to 42):
            ``gsm_symbolic`` generation seed.
        test_fraction (`float`, *optional*, defaults to 0.2):
            Share of templates (or, without templates, of ids) put in the ``test`` split; 0 gives only ``train``.
        split_seed (`int`, *optional*, defaults to 0):
            Seed of the template/id assignment to splits.
        hub_config (`str`, *optional*): Hub dataset configuration name for an ``org/name`` source.
        hub_split (`str`, *optional*, defaults to `"train"`): Hub split to read for an ``org/name`` source.
    """

    source: str = field(
        default=DEFAULT_SOURCE,
        metadata={"help": "gsm_symbolic, gsm8k, math500, FILE.jsonl or org/name; several, comma-separated, mix them."},
    )
    limit: int | None = field(default=None, metadata={"help": "Keep only the first N problems."})
    size: int = field(default=200, metadata={"help": "gsm_symbolic problems to generate when no limit is given."})
    seed: int = field(default=42, metadata={"help": "gsm_symbolic generation seed."})
    test_fraction: float = field(default=0.2, metadata={"help": "Share of templates (else ids) in the test split."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the split assignment."})
    hub_config: str | None = field(default=None, metadata={"help": "Hub dataset config for an org/name source."})
    hub_split: str = field(default="train", metadata={"help": "Hub split for an org/name source."})

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise SourceError("source must be a non-empty string; " + valid_sources_text())
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be a positive integer, got {self.limit}")
        if self.size <= 0:
            raise ValueError(f"size must be a positive integer, got {self.size}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"test_fraction must be in [0, 1], got {self.test_fraction}")
        self.source_kind()  # validates the name early, with the list of valid choices

    def parts(self) -> list[ProblemsConfig]:
        """The config of each source of a mix (``[self]`` for one source), in the order they are read."""
        names = [name.strip() for name in self.source.split(",")]
        if len(names) == 1:
            return [self]
        if not all(names):
            raise SourceError(f"source {self.source!r} has an empty name in its comma-separated list")
        if len(set(names)) < len(names):
            raise SourceError(f"source {self.source!r} names a source twice")
        return [dataclasses.replace(self, source=name) for name in names]

    def source_kind(self) -> str:
        """``generated``, ``jsonl``, ``hub``, ``mix`` (several, each checked) — or a :class:`SourceError` listing
        the valid choices."""
        parts = self.parts()
        if len(parts) > 1:
            for part in parts:
                part.source_kind()
            return "mix"
        if self.source in GENERATED_SOURCES:
            return "generated"
        if self.source in HUB_SOURCES:
            return "hub"
        if self.source.endswith(".jsonl") or self.source.endswith(".json") or Path(self.source).exists():
            if not Path(self.source).is_file():
                raise SourceError(f"source file not found: {self.source}")
            return "jsonl"
        if re.fullmatch(r"[\w.-]+/[\w.-]+", self.source):
            return "hub"
        raise SourceError(f"unknown source {self.source!r}; " + valid_sources_text())


def valid_sources_text() -> str:
    names = ", ".join((*GENERATED_SOURCES, *HUB_SOURCES))
    return (
        f"valid choices: {names}, a path to a FILE.jsonl, a Hub dataset id org/name, or several of these separated by "
        "commas"
    )


# ---------------------------------------------------------------------------------------------------------------
# Row normalization: any supported record shape -> one FEATURES row
# ---------------------------------------------------------------------------------------------------------------


def _row(
    id_: str,
    source: str,
    problem: str = "",
    answer: str | None = None,
    solution: str | None = None,
    answer_raw: str | None = None,
    template: int = -1,
    shape: str = "unknown",
    status: str = "ok",
    reason: str = "",
    meta: dict | None = None,
) -> dict:
    return {
        "id": id_,
        "source": source,
        "problem": problem,
        "answer": answer,
        "solution": solution,
        "answer_raw": answer_raw,
        "template": template,
        "shape": shape,
        "status": status,
        "status_reason": reason,
        "meta_json": json.dumps(meta or {}, ensure_ascii=False, default=str, sort_keys=True),
    }


def detect_shape(record: dict) -> str:
    """``gsm8k``, ``math``, ``equation`` or ``plain`` for a record, from its fields (see the module docstring)."""
    if "question" in record and "problem" not in record:
        return "gsm8k"
    if "problem" in record and "solution" in record and record.get("answer") in (None, ""):
        return "math"
    if "problem" in record and "solution" in record and isinstance(record.get("solution"), str):
        return "math" if "\\boxed" in record["solution"] else "plain"
    if "problem" in record and isinstance(record.get("equation"), str) and record.get("solution") is None:
        return "equation"
    return "plain"


def normalize_record(record, default_id: str, source: str) -> dict:
    """Turn one raw record (a parsed JSON line or a Hub row) into a ``problems`` row, never raising.

    Problems the pipeline cannot use keep a non-``ok`` status and a reason naming the field.
    """
    if not isinstance(record, dict):
        return _row(
            default_id, source, status="invalid_row", reason=f"expected a JSON object, got {type(record).__name__}"
        )
    raw_id = record.get("id", record.get("unique_id"))
    id_ = str(raw_id) if isinstance(raw_id, (str, int)) and str(raw_id).strip() else default_id
    shape = detect_shape(record)
    text_field = "question" if shape == "gsm8k" else "problem"
    text = record.get(text_field)
    if text is None:
        return _row(id_, source, shape=shape, status="invalid_row", reason="missing field 'problem' (or 'question')")
    if not isinstance(text, str):
        return _row(
            id_,
            source,
            shape=shape,
            status="invalid_row",
            reason=f"field '{text_field}' must be a string, got {type(text).__name__}",
        )
    solution_field = "answer" if shape == "gsm8k" else "solution"
    solution = record.get(solution_field)
    if solution is not None and not isinstance(solution, str):
        return _row(
            id_,
            source,
            problem=text,
            shape=shape,
            status="invalid_row",
            reason=f"field '{solution_field}' must be a string, got {type(solution).__name__}",
        )
    if shape == "gsm8k":
        raw = record.get("answer")
        gold, status = normalize_gold(raw, "gsm8k")
    elif shape == "math" and record.get("answer") in (None, ""):
        raw = solution
        gold, status = normalize_gold(raw, "math")
    else:
        raw = record.get("answer")
        if isinstance(raw, bool) or (raw is not None and not isinstance(raw, (str, int, float))):
            return _row(
                id_,
                source,
                problem=text,
                solution=solution,
                shape=shape,
                status="invalid_row",
                reason=f"field 'answer' must be a string or number, got {type(raw).__name__}",
            )
        gold, status = normalize_gold(raw, "plain")
    if shape == "equation":  # MAWPS / ASDiv: the reference CoT is written from the equation, step by step
        solution = solution_from_equation(record["equation"])
    raw_text = None if raw is None else str(raw)
    reason = {
        "missing_answer": "no gold answer",
        "unparseable_answer": "gold answer could not be read"
        + (" (no '#### N' line)" if shape == "gsm8k" else " (no \\boxed{})" if shape == "math" else ""),
    }.get(status, "")
    if status == "ok" and not text.strip():
        status, reason = "empty_problem", "field 'problem' is empty"
    template = record.get("template", -1)
    meta = {
        k: v for k, v in record.items() if k not in {"id", "question", "problem", "answer", "solution", "template"}
    }
    return _row(
        id_,
        source,
        problem=text,
        answer=gold,
        solution=solution,
        answer_raw=raw_text,
        template=template if isinstance(template, int) and not isinstance(template, bool) else -1,
        shape=shape,
        status=status,
        reason=reason,
        meta=meta,
    )


# ---------------------------------------------------------------------------------------------------------------
# Readers, one per source kind; each yields rows in source order
# ---------------------------------------------------------------------------------------------------------------


def iter_gsm_symbolic(size: int, seed: int) -> Iterator[dict]:
    """Generate ``size`` gsm_symbolic problems (deterministic by ``seed``)."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset("gsm_symbolic", seed=seed, size=size)
    for i in range(size):
        item = dataset[i]
        meta = item["metadata"]
        question = _GSM_SYMBOLIC_SUFFIX.sub("", item["question"])
        yield _row(
            f"gsm_symbolic-s{seed}-{i:06d}",
            "gsm_symbolic",
            problem=question,
            answer=normalize_gold(str(item["answer"]), "plain")[0],
            solution=meta.get("answer_cot"),
            answer_raw=str(item["answer"]),
            template=int(dataset.task_indices[i]),
            shape="gsm8k",
            meta={"variables": meta.get("variables", {}), "difficulty": meta.get("difficulty")},
        )


def iter_jsonl(path: str, limit: int | None) -> Iterator[dict]:
    """Read a jsonl file line by line; malformed lines become ``invalid_json`` rows, blank lines are skipped."""
    stem = Path(path).stem
    n = 0
    # utf-8-sig: a byte-order mark at the start of the file (Windows editors) is not part of the first line
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if limit is not None and n >= limit:
                return
            n += 1
            default_id = f"{stem}-{line_no:06d}"
            try:
                record = json.loads(line)
                if _SURROGATE_ESCAPE.search(line):
                    json.dumps(record, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be stored
            except UnicodeEncodeError:
                yield _row(default_id, stem, status="invalid_json", reason=f"line {line_no}: a lone surrogate escape")
                continue
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit integer, 100,000-deep [[[
                message = exc.msg if isinstance(exc, json.JSONDecodeError) else f"{type(exc).__name__}: {exc}"[:200]
                yield _row(default_id, stem, status="invalid_json", reason=f"line {line_no}: {message}")
                continue
            yield normalize_record(record, default_id, stem)


def iter_hub(hub_id: str, config: str | None, split: str, limit: int | None, name: str) -> Iterator[dict]:
    """Read a Hub dataset; offline or unreachable gives a :class:`SourceError`, not a stack trace."""
    if hub_offline():
        raise SourceError(
            f"cannot reach the Hugging Face Hub to load {hub_id!r}: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set. "
            "Pass a local FILE.jsonl (GSM8K, MATH or plain shape) instead, or unset the variable with network access."
        )
    try:
        dataset = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # noqa: BLE001 - every failure to fetch becomes one clear message
        raise SourceError(
            f"cannot load {hub_id!r} (config={config!r}, split={split!r}) from the Hugging Face Hub: "
            f"{type(exc).__name__}: {str(exc)[:300]}. Pass a local FILE.jsonl instead."
        ) from exc
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    slug = name.replace("/", "__")
    for i, record in enumerate(dataset):
        yield normalize_record(dict(record), f"{slug}-{i:06d}", name)


def read_source(config: ProblemsConfig) -> list[dict]:
    """All rows of the configured source, in source order (ids made unique or an error naming the duplicate)."""
    kind = config.source_kind()
    if kind == "mix":
        rows = [row for part in config.parts() for row in read_source(part)]
    elif kind == "generated":
        rows = list(iter_gsm_symbolic(config.limit or config.size, config.seed))
    elif kind == "jsonl":
        rows = list(iter_jsonl(config.source, config.limit))
    else:
        hub_id, hub_config, split, _ = HUB_SOURCES.get(
            config.source, (config.source, config.hub_config, config.hub_split, None)
        )
        rows = list(iter_hub(hub_id, hub_config, split, config.limit, config.source))
    if not rows:
        raise SourceError(f"source {config.source!r} has no problems (empty file or empty dataset)")
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        if row["id"] in seen:
            raise SourceError(
                f"duplicate id {row['id']!r} in {config.source} (rows {seen[row['id']] + 1} and {index + 1}); "
                "ids must be unique"
            )
        seen[row["id"]] = index
    return rows


def assign_split(row: dict, test_templates: set[int], test_fraction: float, split_seed: int) -> str:
    """``test`` or ``train``: by template when the row has one, else by a stable hash of its id."""
    if row["template"] >= 0:
        return "test" if row["template"] in test_templates else "train"
    digest = hashlib.sha256(f"{split_seed}:{row['id']}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def test_templates_for(templates: list[int], test_fraction: float, split_seed: int) -> set[int]:
    """The templates held out for testing: a seeded draw of ``round(test_fraction * n)`` of the distinct templates."""
    distinct = sorted(set(t for t in templates if t >= 0))
    rng = random.Random(split_seed)
    rng.shuffle(distinct)
    n_test = round(test_fraction * len(distinct))
    if test_fraction > 0 and distinct and n_test == 0:
        n_test = 1
    return set(distinct[:n_test])


def build_problems(config: ProblemsConfig) -> datasets.DatasetDict:
    """Read the source and return ``DatasetDict(train=..., test=...)`` (``test`` only when it has rows)."""
    rows = read_source(config)
    test_templates = test_templates_for([r["template"] for r in rows], config.test_fraction, config.split_seed)
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for row in rows:
        splits[assign_split(row, test_templates, config.test_fraction, config.split_seed)].append(row)
    out = datasets.DatasetDict()
    for name, split_rows in splits.items():
        if split_rows or name == "train":
            out[name] = datasets.Dataset.from_list(split_rows, features=FEATURES)
    logger.info(
        "problems from %s: %s (test templates: %s)",
        config.source,
        {k: len(v) for k, v in out.items()},
        sorted(test_templates) if test_templates else "none",
    )
    return out
