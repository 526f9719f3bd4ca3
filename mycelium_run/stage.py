"""The end of ``mycelium run``: train the students on the run's student sets, evaluate them on the unseen test
split, and keep both steps resumable.

A trained student is kept (not retrained) when its identity — the training set's fingerprint, the training settings,
the backbone and the recipe's code — matches the ``identity`` of ``DIR/models/<student>/mycelium.json``; any other
student there (one that ``mycelium train`` wrote, whose stamp has no identity, or one of other settings) is
retrained, with a warning, so the run's models, evaluation, report and release are always what its configuration
trains. A student is trained in a work folder (its checkpoints too) and swapped into ``DIR/models/<student>`` only
when complete, so an interrupted run never leaves a half-saved model behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mycelium_datasets.layout import RunFolder
from mycelium_models.students import STUDENTS

logger = logging.getLogger(__name__)


class NoTrainingDataError(ValueError):
    """The run's student sets have no training row (no training problem's CoT executed to its gold answer)."""


def training_rows(out_dir: Path, split: str = "train") -> dict[str, int]:
    """Rows of ``split`` in each student set of the run, from their completion markers."""
    rows = {}
    for artifact in (student.artifact for student in STUDENTS.values()):
        marker = json.loads(RunFolder(out_dir).marker(artifact).read_text())
        rows[artifact] = int(marker["rows"].get(split, 0))
    return rows


@dataclass
class StudentsConfig:
    """Training and evaluation of the students at the end of ``mycelium run`` (the backbone is
    ``--student_tokenizer``, the student sets' tokenizer)."""

    students: bool = field(
        default=True, metadata={"help": "Train the students and evaluate them (use --no_students to stop earlier)."}
    )
    student_epochs: float = field(default=6.0, metadata={"help": "Training epochs for each student."})
    student_batch_size: int = field(default=16, metadata={"help": "Training batch size for each student."})
    student_learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate for each student."})
    student_head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate of each student's own (newly initialised) layers (default: each student's "
            "own: the binder 1e-3, the tagger and the classifier --student_learning_rate)."
        },
    )
    student_seed: int = field(default=0, metadata={"help": "Training seed (the run is deterministic on CPU)."})
    # The model options of `mycelium train` (StudentTrainingArguments), the same defaults (tests/test_layout.py
    # checks both surfaces name every option); the input length is the student sets' --max_length.
    student_pooling: str = field(
        default="mean", metadata={"help": "Classifier pooling: mean (encoders) or last (decoders)."}
    )
    student_freeze_embeddings: bool = field(
        default=True,
        metadata={"help": "Keep the backbone's input embeddings frozen (--no_student_freeze_embeddings trains them)."},
    )
    student_validation_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of the training split's templates (else ids) held out to pick the best checkpoint."},
    )
    student_early_stopping_patience: int = field(
        default=2,
        metadata={"help": "Stop when the validation metric has not improved for this many epochs (0: every epoch)."},
    )
    student_min_constant_programs: int = field(
        default=5,
        metadata={"help": "The step decoder's constants: those at least this many training programs use."},
    )


# StudentTrainingArguments' fields that StudentsConfig does not set as student_<name>: where a run's student lives
# and reads from, and the input length (the student sets' --max_length).
_SET_BY_THE_RUN = ("run_dir", "backbone", "models_dir", "max_length")


def student_arguments(config: StudentsConfig, run_dir: str | Path, backbone: str, max_length: int, models_dir=None):
    """The ``StudentTrainingArguments`` of a student that ``mycelium run`` (or a ``mycelium loop`` round) trains:
    every model option from ``config`` (``student_<option>``), so a run can set whatever ``mycelium train`` can."""
    from mycelium_models.train import StudentTrainingArguments

    options = {
        f.name: getattr(config, f"student_{f.name}")
        for f in dataclasses.fields(StudentTrainingArguments)
        if f.name not in _SET_BY_THE_RUN
    }
    return StudentTrainingArguments(
        run_dir=str(run_dir),
        backbone=backbone,
        models_dir=None if models_dir is None else str(models_dir),
        max_length=max_length,
        **options,
    )


def _identity(out_dir: Path, kind: str, config: StudentsConfig, backbone: str, max_length: int = 256) -> str:
    """What a kept student must match: its training set's fingerprint, the training settings, the backbone, the
    input length and the students' code, hashed over every module ``mycelium_models.train`` runs
    (``versions.students_code``: the same code closure and syntax-tree hash as an artifact's fingerprint and the
    version table), so an edit to any of them (the binder's input encoding in ``pointers``, the DAG constants in
    ``dag``, the card template) retrains."""
    from mycelium_run.versions import students_code

    marker = json.loads(RunFolder(out_dir).marker(STUDENTS[kind].artifact).read_text())
    h = hashlib.sha256()
    for part in (
        kind,  # the binder and the decoder train on one artifact with one config
        marker["fingerprint"],
        json.dumps(dataclasses.asdict(config), sort_keys=True),
        backbone,
        f"max_length={max_length}",
        students_code(),
    ):
        h.update(part.encode())
    return h.hexdigest()[:16]


def train_students(out_dir: str | Path, config: StudentsConfig, backbone: str, max_length: int = 256) -> dict:
    """Train (or keep) each student of the registry into ``DIR/models/<student>``; returns their evaluation
    metrics. ``max_length``: the students' input length in tokens (the student sets' ``--max_length``)."""
    from mycelium_datasets.runner import process_info
    from mycelium_models.train import train

    out_dir = Path(out_dir)
    empty = [name for name, n in training_rows(out_dir).items() if n == 0]
    if empty:
        raise NoTrainingDataError(
            f"{', '.join(empty)} in {out_dir} have no training rows: no training problem's CoT executed to its gold "
            "answer, so there is nothing to train the students on (use more problems: --size / --limit)"
        )
    info = process_info()
    validated = {artifact: _has_validation(out_dir, artifact) for artifact in training_rows(out_dir)}
    results = {}
    for kind, student in STUDENTS.items():
        artifact = student.artifact
        identity = _identity(out_dir, kind, config, backbone, max_length)
        final = RunFolder(out_dir).student(kind)
        kept = _stamp(final)
        if kept.get("identity") == identity:
            logger.info("the %s is up to date (%s); not retraining", kind, identity)
            results[kind] = json.loads((final / "metrics.json").read_text())
            continue
        if final.exists() and info.is_main and not kept.get("identity"):
            logger.warning(
                "%s was not trained by `mycelium run` (by `mycelium train`?): retraining it with the run's settings "
                "(to keep a student trained otherwise, give `mycelium train` a --models_dir outside the run)",
                final,
            )
        elif final.exists() and info.is_main:
            logger.info("the %s was trained with other settings or code; retraining it", kind)
        work = RunFolder(out_dir).work(f"models-{kind}", identity)
        shutil.rmtree(work, ignore_errors=True)
        args = student_arguments(config, out_dir, backbone, max_length, models_dir=work / "models")
        training_args = training_arguments(config, work / "checkpoints", kind, evaluate=validated[artifact])
        logger.debug("training the %s on %s in %s", kind, out_dir / artifact, work)
        stamp = {"identity": identity, "config": dataclasses.asdict(config)}
        metrics = train(kind, args, training_args, home=final, stamp=stamp, scratch_output_dir=True)
        if info.is_main:
            produced = work / "models" / kind
            old = final.with_name(f".{kind}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.replace(final, old)
            os.replace(produced, final)
            shutil.rmtree(old, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            if not any(work.parent.iterdir()):
                work.parent.rmdir()
        info.barrier()
        results[kind] = metrics
    return results


def _stamp(folder: Path) -> dict:
    """A model folder's ``mycelium.json`` (what its weights were trained from and with), ``{}`` when it has none or
    an unreadable one."""
    try:
        return json.loads((folder / "mycelium.json").read_text())
    except (OSError, ValueError):
        return {}


def _has_validation(out_dir: Path, artifact: str) -> bool:
    """Whether the student set's training split holds out a validation split to choose checkpoints on (two or more
    templates, else ids: :func:`mycelium_models.train.carve_validation`); without one the student trains for its
    epochs and is not evaluated along the way."""
    import datasets

    from mycelium_models.train import StudentTrainingArguments, carve_validation

    rows = datasets.load_dataset(str(out_dir / artifact), split="train")
    return len(carve_validation(rows, out_dir, StudentTrainingArguments.validation_fraction)[1]) > 0


def training_defaults(config: StudentsConfig, kind: str | None = None, evaluate: bool = True) -> dict:
    """The ``TrainingArguments`` options of the student ``kind``: those of ``mycelium run`` and of each ``mycelium
    loop`` round, and the parser defaults of ``mycelium train`` (which flags and ``--config`` override; the recipe
    never overwrites them). With ``evaluate``, the validation split is evaluated each epoch and the best checkpoint
    (by the student's ``best_metric``) is kept; no device is named, so Trainer takes the best there is (CUDA, MPS,
    else CPU; ``--use_cpu`` to choose the CPU)."""
    defaults = {
        "num_train_epochs": config.student_epochs,
        "per_device_train_batch_size": config.student_batch_size,
        "per_device_eval_batch_size": 64,
        "learning_rate": config.student_learning_rate,
        "warmup_steps": 0.1,
        "weight_decay": 0.01,
        "seed": config.student_seed,
        "data_seed": config.student_seed,
        "report_to": "none",
        "logging_steps": 10,
        "train_sampling_strategy": "group_by_length",  # batches of similar lengths: little compute goes to padding
        # pinned memory only speeds copies to an accelerator; without one torch warns at every DataLoader
        "dataloader_pin_memory": _has_accelerator(),
        # checkpoints only restore the best epoch (nothing resumes from them): no optimizer state (3x the weights)
        "save_only_model": True,
        "eval_strategy": "epoch" if evaluate else "no",
        "save_strategy": "epoch" if evaluate else "no",
    }
    if evaluate:
        defaults.update(load_best_model_at_end=True, save_total_limit=1)
        if kind is not None:
            defaults["metric_for_best_model"] = STUDENTS[kind].best_metric  # higher is better for each of them
    if kind == "binder":
        defaults["label_names"] = ["labels", "answer_labels"]
    return defaults


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def training_arguments(config: StudentsConfig, output_dir: Path, kind: str, evaluate: bool = True):
    """The ``TrainingArguments`` of the student ``kind`` trained by ``mycelium run`` (and by each ``mycelium loop``
    round); ``evaluate`` when its student set holds out a validation split."""
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(output_dir), **training_defaults(config, kind, evaluate))


def evaluate_run(out_dir: str | Path, split: str = "test", verify_timeout: float = 5.0) -> dict:
    """The students alone on the run's ``split`` problems (unseen templates for ``test``), with the run's traces and
    operations as references for attribution; writes ``DIR/eval/`` and puts the end-to-end accuracy into the
    students' cards (``model-index``, on ``problems`` / ``split``). Returns the summary."""
    import datasets

    from mycelium_datasets.card import run_relative
    from mycelium_models.evaluation import (
        EVAL_COLUMNS,
        evaluate_students,
        references_from_run,
        scoring_rows,
        write_eval,
    )
    from mycelium_models.model_card import add_end_to_end, problem_source
    from mycelium_models.solver import MyceliumSolver

    out_dir = Path(out_dir)
    problems = datasets.load_dataset(str(out_dir / "problems"))
    if split not in problems:
        raise ValueError(f"{out_dir / 'problems'} has no {split!r} split; splits: {list(problems)}")
    rows = scoring_rows(problems[split].select_columns([c for c in EVAL_COLUMNS if c in problems[split].column_names]))
    folder = RunFolder(out_dir)
    solver = MyceliumSolver.from_pretrained(folder.models)
    summary, predictions = evaluate_students(
        solver, rows, references_from_run(out_dir, split), verify_timeout=verify_timeout
    )
    summary.update(
        {
            "split": split,
            "source": run_relative(out_dir / "problems", out_dir),
            "models": run_relative(folder.models, out_dir),
        }
    )
    write_eval(folder.eval, summary, predictions, title=f"Students on the {split} split (unseen templates)")
    if summary["n_scored"]:  # no gold answer, no accuracy to report
        add_end_to_end(folder.models, summary["accuracy"], split, source=problem_source(out_dir))
    return summary
