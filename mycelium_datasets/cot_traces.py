"""The ``cot_traces`` artifact: each problem with one chain of thought, its extracted answer and its verdict.

Two CoT sources (``CotTracesConfig.cot_source``):

- ``reference``: the dataset's own solution is the CoT. GSM8K calculator annotations ``<<48/2=24>>`` are removed
  from the text and kept in ``annotations`` (expression, result, and the character position in ``cot`` where the
  annotation stood); a final ``#### N`` line becomes ``The answer is N.``. The teacher named in ``teachers[0]`` is
  recorded (its tokenizer gives ``prompt`` and ``n_cot_tokens``): its attention over this CoT is captured later.
- ``teacher``: the teacher generates the CoT (batched ``generate``, chat template, left padding, greedy by default).
  A **cascade**: problems the first teacher gets wrong go to the next teacher in ``teachers``, and so on (the field
  guide's 7B -> 72B mop-up); ``teacher`` says which one produced the kept CoT and ``attempts`` lists every try.

Input columns: ``id``, ``problem``, ``answer``, ``solution``, ``status`` (the ``problems`` artifact).
Output columns: the input's, plus ``teacher``, ``cot_source``, ``prompt``, ``cot``, ``cot_answer``,
``answer_source`` (boxed / hash / phrase / last_number / none), ``correct`` (null when there is no gold answer),
``verify_method``, ``finish_reason`` (stop / length / reference / prompt_too_long / skipped), ``n_cot_tokens``,
``annotations``, ``attempts``. ``status`` becomes ``truncated`` (finish_reason length), ``no_reference_cot`` or
``prompt_too_long`` where that applies; a problem-level failure status is kept as it was.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import datasets

from . import problems as problems_mod
from .answers import answers_match, extract_answer
from .columns import require_columns
from .defaults import DEFAULT_TEACHER
from .runner import ProcessInfo, map_in_parts
from .teacher import DEFAULT_SYSTEM_PROMPT, build_prompt, generate, load_teacher

logger = logging.getLogger(__name__)

# 1.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc
# 1.1.1: problems reads the equation shape; rows of the other shapes as before
# 1.1.5: the runner's progress bars (one per stage and split, on a terminal); the same rows as 1.1.4
# 1.1.5: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 1.1.6: quiet progress bars and the cards' dataset_info licence together (two branches merged)
# 1.1.7: teacher generation on CPU runs on the free cores (threads.py); the same greedy CoTs, the same rows
VERSION = "1.1.7"
INPUT_COLUMNS = ("id", "problem", "answer", "solution", "status")

ATTEMPT = {
    "teacher": datasets.Value("string"),
    "cot_answer": datasets.Value("string"),
    "answer_source": datasets.Value("string"),
    "correct": datasets.Value("bool"),
    "finish_reason": datasets.Value("string"),
}
FEATURES = datasets.Features(
    {
        **problems_mod.FEATURES,
        "teacher": datasets.Value("string"),
        "cot_source": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "cot": datasets.Value("string"),
        "cot_answer": datasets.Value("string"),
        "answer_source": datasets.Value("string"),
        "correct": datasets.Value("bool"),
        "verify_method": datasets.Value("string"),
        "finish_reason": datasets.Value("string"),
        "n_cot_tokens": datasets.Value("int32"),
        "annotations": datasets.List(
            {"expr": datasets.Value("string"), "result": datasets.Value("string"), "char_pos": datasets.Value("int32")}
        ),
        "attempts": datasets.List(ATTEMPT),
    }
)

COT_SOURCES = ("reference", "teacher")


@dataclass
class CotTracesConfig:
    """Configuration of the ``cot_traces`` artifact.

    Args:
        cot_source (`str`, *optional*, defaults to `"reference"`):
            ``reference`` (the dataset's solution is the CoT) or ``teacher`` (the teacher generates it).
        teachers (`list[str]`, *optional*, defaults to `["smollm2-135m-instruct"]`):
            The teacher cascade: embedded names, local folders or Hub ids. With ``teacher``, each next teacher
            re-solves the problems the previous ones got wrong.
        max_new_tokens (`int`, *optional*, defaults to 512): generation budget per CoT.
        batch_size (`int`, *optional*, defaults to 8): prompts per ``generate`` call.
        do_sample (`bool`, *optional*, defaults to `False`): sample instead of greedy decoding.
        temperature (`float`, *optional*, defaults to 0.7): sampling temperature when ``do_sample``.
        system_prompt (`str`, *optional*): system turn of the chat prompt (empty string for none).
        allow_boxed (`bool`, *optional*, defaults to `True`):
            read ``\\boxed{}`` when extracting the teacher's answer (its own accuracy); the pipeline's honest
            evaluation switches it off elsewhere.
        verify_timeout (`float`, *optional*, defaults to 5.0): seconds allowed per answer check.
        part_size (`int`, *optional*, defaults to 64): rows per resumable part.
    """

    cot_source: str = field(default="reference", metadata={"help": "reference or teacher"})
    teachers: list[str] = field(default_factory=lambda: [DEFAULT_TEACHER], metadata={"help": "Teacher cascade."})
    max_new_tokens: int = field(default=512, metadata={"help": "Generation budget per CoT."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature when do_sample."})
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT, metadata={"help": "System turn of the chat prompt."})
    allow_boxed: bool = field(default=True, metadata={"help": "Read \\boxed{} for the teacher's own answer."})
    verify_timeout: float = field(default=5.0, metadata={"help": "Seconds per answer check."})
    part_size: int = field(default=64, metadata={"help": "Rows per resumable part."})

    def __post_init__(self) -> None:
        if self.cot_source not in COT_SOURCES:
            raise ValueError(f"unknown cot_source {self.cot_source!r}; valid choices: {', '.join(COT_SOURCES)}")
        if isinstance(self.teachers, str):
            self.teachers = [t for t in self.teachers.split(",") if t]
        if not self.teachers:
            raise ValueError("teachers must name at least one teacher")
        for name in ("max_new_tokens", "batch_size", "part_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------------------------
# Reference CoTs
# ---------------------------------------------------------------------------------------------------------------

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_FINAL_HASH = re.compile(r"\n?[ \t]*####[ \t]*([^\n]*?)[ \t]*$")


def clean_reference(solution: str) -> tuple[str, list[dict]]:
    """Remove GSM8K calculator annotations and turn ``#### N`` into ``The answer is N.``.

    Returns the cleaned CoT and the annotations, each ``{"expr", "result", "char_pos"}`` where ``char_pos`` is the
    offset in the cleaned CoT where the annotation stood (just before the visible result).
    """
    pieces: list[str] = []
    annotations: list[dict] = []
    length = 0
    last = 0
    for match in _ANNOTATION.finditer(solution):
        piece = solution[last : match.start()]
        pieces.append(piece)
        length += len(piece)
        expr, _, result = match.group(1).rpartition("=")
        annotations.append({"expr": expr.strip(), "result": result.strip(), "char_pos": length})
        last = match.end()
    pieces.append(solution[last:])
    cot = "".join(pieces)
    cot = _FINAL_HASH.sub(lambda m: f"\nThe answer is {m.group(1)}." if m.group(1) else "", cot).strip()
    # Positions never point past the text (a trailing annotation with nothing after it).
    for a in annotations:
        a["char_pos"] = min(a["char_pos"], len(cot))
    return cot, annotations


@lru_cache(maxsize=4)
def load_tokenizer(teacher: str):
    """The teacher's tokenizer alone, once per process (reference CoTs need no model weights)."""
    from transformers import AutoTokenizer

    from .defaults import resolve_teacher

    return AutoTokenizer.from_pretrained(resolve_teacher(teacher))


# ---------------------------------------------------------------------------------------------------------------
# The batched transform
# ---------------------------------------------------------------------------------------------------------------


def _usable(status: str, problem: str) -> bool:
    return status in ("ok", "missing_answer", "unparseable_answer") and bool(problem and problem.strip())


def make_traces(
    batch: dict,
    *,
    cot_source: str,
    teacher: str,
    system_prompt: str,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    allow_boxed: bool,
    verify_timeout: float,
) -> dict:
    """``batch -> batch``: add a CoT (reference or generated by ``teacher``), its answer and its verdict.

    Heavy objects (model, tokenizer) are loaded once per process by :func:`load_teacher` / :func:`load_tokenizer`,
    keyed by name, so this function stays pure and picklable for ``Dataset.map``.
    """
    n = len(batch["id"])
    out = {k: list(v) for k, v in batch.items()}
    usable = [_usable(batch["status"][i], batch["problem"][i]) for i in range(n)]
    cots: list[str] = [""] * n
    reasons: list[str] = ["skipped"] * n
    n_tokens: list[int] = [0] * n
    annotations: list[list[dict]] = [[] for _ in range(n)]
    prompts: list[str] = [""] * n

    if cot_source == "reference":
        tokenizer = load_tokenizer(teacher)
        for i in range(n):
            if not usable[i]:
                continue
            prompts[i] = build_prompt(tokenizer, batch["problem"][i], system_prompt or None)
            solution = batch["solution"][i]
            if not solution or not solution.strip():
                reasons[i] = "no_reference_cot"
                continue
            cots[i], annotations[i] = clean_reference(solution)
            reasons[i] = "reference"
            n_tokens[i] = len(tokenizer(cots[i], add_special_tokens=False)["input_ids"])
    else:
        model, tokenizer = load_teacher(teacher)
        todo = [i for i in range(n) if usable[i]]
        for i in todo:
            prompts[i] = build_prompt(tokenizer, batch["problem"][i], system_prompt or None)
        if todo:
            generated = generate(
                model,
                tokenizer,
                [prompts[i] for i in todo],
                max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
            )
            for i, g in zip(todo, generated):
                cots[i], reasons[i], n_tokens[i] = g["text"], g["finish_reason"], g["n_tokens"]

    previous = batch.get("attempts") or [[] for _ in range(n)]
    status = list(batch["status"])
    for key in (
        "teacher",
        "cot_source",
        "prompt",
        "cot",
        "cot_answer",
        "answer_source",
        "correct",
        "verify_method",
        "finish_reason",
        "n_cot_tokens",
        "annotations",
        "attempts",
    ):
        out[key] = [None] * n
    for i in range(n):
        answer, source = extract_answer(cots[i], allow_boxed=allow_boxed) if cots[i] else (None, "none")
        if reasons[i] in ("skipped", "no_reference_cot", "prompt_too_long"):
            correct, method = None, "not_run"
        else:
            verdict = answers_match(answer, batch["answer"][i], timeout=verify_timeout)
            correct, method = verdict.match, verdict.method
        if status[i] == "ok" and reasons[i] in ("length", "no_reference_cot", "prompt_too_long"):
            status[i] = {"length": "truncated"}.get(reasons[i], reasons[i])
            batch_reason = {
                "truncated": f"the CoT hit max_new_tokens={max_new_tokens} before an end token",
                "no_reference_cot": "the source has no solution to use as the reference CoT",
                "prompt_too_long": "the prompt does not fit the teacher's context",
            }[status[i]]
            out["status_reason"][i] = batch_reason
        out["teacher"][i] = teacher
        out["cot_source"][i] = cot_source
        out["prompt"][i] = prompts[i]
        out["cot"][i] = cots[i]
        out["cot_answer"][i] = answer
        out["answer_source"][i] = source
        out["correct"][i] = correct
        out["verify_method"][i] = method
        out["finish_reason"][i] = reasons[i]
        out["n_cot_tokens"][i] = n_tokens[i]
        out["annotations"][i] = annotations[i]
        out["attempts"][i] = list(previous[i] or []) + [
            {
                "teacher": teacher,
                "cot_answer": answer,
                "answer_source": source,
                "correct": correct,
                "finish_reason": reasons[i],
            }
        ]
    out["status"] = status
    return out


def build_cot_traces(
    problems: datasets.DatasetDict,
    config: CotTracesConfig,
    work_dir: str | os.PathLike,
    info: ProcessInfo | None = None,
) -> datasets.DatasetDict | None:
    """Run the configured CoT source (and cascade) over every split; resumable through ``work_dir`` (a folder,
    `str` or `os.PathLike`, made when missing).

    Returns the traces on the main process, `None` on the others.
    """
    work_dir = Path(work_dir)
    info = info or ProcessInfo()
    result = datasets.DatasetDict()
    for split, dataset in problems.items():
        require_columns(dataset, INPUT_COLUMNS, stage="cot_traces", upstream="problems")
        stage_kwargs = {
            "cot_source": config.cot_source,
            "system_prompt": config.system_prompt,
            "max_new_tokens": config.max_new_tokens,
            "do_sample": config.do_sample,
            "temperature": config.temperature,
            "allow_boxed": config.allow_boxed,
            "verify_timeout": config.verify_timeout,
        }
        current = map_in_parts(
            dataset,
            make_traces,
            work_dir=work_dir / split / "stage0",
            features=FEATURES,
            fn_kwargs={**stage_kwargs, "teacher": config.teachers[0]},
            batch_size=config.batch_size,
            part_size=config.part_size,
            info=info,
            desc=f"cot_traces/{split} {config.teachers[0]}",
        )
        if config.cot_source == "teacher":
            for stage, teacher in enumerate(config.teachers[1:], start=1):
                redo = [i for i, c in enumerate(current["correct"]) if c is False]
                logger.info("cascade stage %d: %d problems go to %s", stage, len(redo), teacher)
                if not redo:
                    break
                again = map_in_parts(
                    current.select(redo),
                    make_traces,
                    work_dir=work_dir / split / f"stage{stage}",
                    features=FEATURES,
                    fn_kwargs={**stage_kwargs, "teacher": teacher},
                    batch_size=config.batch_size,
                    part_size=config.part_size,
                    info=info,
                    desc=f"cot_traces/{split} {teacher}",
                )
                rows = current.to_list()
                for i, row in zip(redo, again.to_list()):
                    rows[i] = row
                current = datasets.Dataset.from_list(rows, features=FEATURES)
        result[split] = current
    return result if info.is_main else None
