"""Trainer recipes for the three students: ``mycelium train tagger``, ``classifier`` and ``binder``.

Each reads its training set from a run folder (``DIR/io_tags``, ``DIR/op_classes`` or ``DIR/bindings``: the
``train`` split for training and ``test`` — unseen templates — for evaluation), fine-tunes a
:class:`MyceliumTagger` / :class:`MyceliumOpClassifier` / :class:`MyceliumBinder` around the backbone with
``Trainer`` (the backbone at ``--learning_rate``, the student's own new layers at ``--head_learning_rate``), keeps
the best checkpoint (span F1 for the tagger, accuracy for the classifier, operand-binding accuracy for the binder),
and saves safetensors, config, tokenizer, a model card with the metrics and the training data's lineage, and
``mycelium.json`` (what the weights were trained from and with) into ``DIR/models/<student>``. The recipe runs
unchanged under ``accelerate launch`` / ``torchrun`` (Trainer handles DDP).

Training reports through ``logging`` and one progress bar on a terminal (``mycelium_datasets.runner.progress_bar``),
never on stdout: Trainer's log dicts are DEBUG lines, kept in ``training_log.json``.
"""

from __future__ import annotations

import collections
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
from transformers import TrainerCallback

from mycelium_datasets.defaults import DEFAULT_BACKBONE, EMBEDDED_BACKBONES, portable_backbone_name, resolve_backbone
from mycelium_datasets.runner import progress_bar
from mycelium_models.metrics import accuracy_macro_f1, io_span_f1, load_metric, span_set  # noqa: F401 - re-exported
from mycelium_models.model_card import USE_BEGIN, USE_END, render_model_card  # noqa: F401 - markers re-exported
from mycelium_models.students import get_student

logger = logging.getLogger(__name__)


class TokenizerMismatchError(ValueError):
    """The ``io_tags`` token ids were made by another tokenizer than the one of the backbone being trained."""


class NoEvaluationSplitError(ValueError):
    """Evaluation was asked for (``--eval_strategy``) but the student set has no ``test`` rows."""


# Version of the released students (the release tag is v<version>); bump it when the model classes change.
# 1.2.2: the references' op parsing solves plain equations with the unknown on both sides
# 1.2.1: the references' op parsing solves plain equations in one letter (mycelium_datasets.equations)
# 1.2.0: the solver ranks operation sequences (rank_operations), the fallback of op parsing's tier 3 in the loop
# 1.1.1: the solver's references read more of GSM8K's plain equations (mycelium_datasets.equations)
# 1.1.0: model cards from a template with a model-index; released together as one solver repo
# 2.0.0: the step decoder (one joint decode of the whole program) answers; checkpoints and epochs are chosen
# on a validation split carved from train (by template, else id), the test split read once at the end
# 2.0.1: problems reads the equation shape; students of the other shapes as before
# 2.1.4: the binder records the length it was trained on (config.max_input_tokens) and every saved tokenizer
# its model_max_length: the solver reads what the students were trained to read
# 2.1.5: each student folder holds mycelium.json (what it was trained from and with), checkpoints hold weights only
# and live outside the models folder; training logs instead of printing; the same weights as 2.1.4
# 2.2.0: the classifier's classes are op_classes' ClassLabel names (in its order, over the whole training split);
# the tagger reads io_tags' "no label" (-1) as the ignored -100
# 2.2.1: both changes above together (two branches merged)
# 2.2.2: the training set is checked before the run folder is locked (training_set); models as before
# 2.2.3: the students' input features are computed afresh each time (in memory): datasets' map cache is keyed by a
# module-level function's name, not its code, so an edit to steps / pointers encoding trained on the old features
# 2.3.0: the step decoder takes the same node on both sides of add / mul (x + x, x * x): those programs train (5% of
# GSM8K train's were dropped) and those problems can be answered
# 2.4.0: the beam ranks complete programs with whole answers and every written number read first (config's
# fraction_penalty / unused_penalty, program_length_penalty off; steps.rank); the same weights as 2.3.0
# 2.4.1: the step decoder projects the problem's tokens for its two attentions once per problem (not per step and
# hypothesis) and pairs only the nodes that can exist at a step; the same function and weights, faster

STUDENT_VERSION = "2.4.1"


@dataclass
class StudentTrainingArguments:
    """What to train, from where, into where (the rest are ``transformers.TrainingArguments``)."""

    run_dir: str = field(metadata={"help": "Run folder holding io_tags / op_classes."})
    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": "Student backbone: embedded name, id or path."})
    models_dir: str | None = field(default=None, metadata={"help": "Where models go (default: RUN_DIR/models)."})
    max_length: int = field(default=256, metadata={"help": "Longest input in tokens."})
    pooling: str = field(default="mean", metadata={"help": "Classifier pooling: mean (encoders) or last (decoders)."})
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate of the layers a student adds to its backbone (randomly initialised, they may "
            "need a larger step than the pretrained backbone's --learning_rate); default: the student's own (the "
            "binder 1e-3, the others --learning_rate)."
        },
    )
    validation_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of the training split's templates (else ids) held out as the validation split that picks "
            "the best checkpoint; the test split is only read at the end."
        },
    )
    early_stopping_patience: int = field(
        default=2,
        metadata={
            "help": "Stop training when the validation metric has not improved for this many evaluations (trained "
            "to a plateau; --num_train_epochs is the most); 0 trains every epoch."
        },
    )
    min_constant_programs: int = field(
        default=5,
        metadata={
            "help": "The step decoder's constant vocabulary: the constants at least this many training programs use "
            "(each is a node every step scores against every other: a training step with 114 constants takes 2.2 "
            "times as long as with 43, benchmarks/bench_decoder.py); programs with a rarer one are counted, not "
            "learnt."
        },
    )
    freeze_embeddings: bool = field(
        default=True,
        metadata={
            "help": "Keep the backbone's input embeddings frozen (half of MiniLM's weights: faster steps, less "
            "overfitting on small sets); --no_freeze_embeddings trains them too."
        },
    )


def features(dataset: datasets.Dataset, function, fn_kwargs: dict | None = None) -> datasets.Dataset:
    """``dataset`` (a student set split) as a student's input features: ``function`` over batches, the set's own
    columns removed, in memory. Never from datasets' cache: its key for a module-level function is the function's
    name, not its code, so a cached result outlives an edit to the encoding (``steps``, ``pointers``) and a student
    would train on the old features."""
    return dataset.map(
        function, batched=True, fn_kwargs=fn_kwargs, remove_columns=dataset.column_names, keep_in_memory=True
    )


def _lineage(run_dir: Path, artifact: str) -> dict:
    marker = run_dir / ".mycelium" / f"{artifact}.json"
    if not marker.is_file():
        return {}
    from mycelium_datasets.builders import lineage_order
    from mycelium_datasets.provenance import in_order

    data = json.loads(marker.read_text())
    chain = in_order(data.get("provenance") or {}, lineage_order())  # markers store keys sorted
    return {
        "artifact": artifact,
        "version": data.get("version"),
        "fingerprint": data.get("fingerprint"),
        "rows": data.get("rows"),
        "provenance": chain,
    }


def backbone_upstream(name: str) -> str | None:
    """The Hub id a backbone came from (embedded names map to their upstream id; local folders to None)."""
    if name in EMBEDDED_BACKBONES:
        return EMBEDDED_BACKBONES[name][3]
    return None if Path(name).exists() else name


def write_model_card(
    out: Path, kind: str, args: StudentTrainingArguments, metrics: dict, lineage: dict, home: Path | None = None
) -> None:
    """The model card (:mod:`mycelium_models.model_card`): YAML (license, base_model, datasets, pipeline_tag,
    version, ``model-index`` with the metrics and the split they were measured on, the training data's lineage, the
    backbone's identity, code version) and a body with the metrics and how to load it from ``home``, the folder the
    model will live in (default ``out``; ``mycelium run`` trains in a work folder and moves the model there). Folders
    are named from the run folder's parent (``run1/models``), never by a path of this machine."""
    from huggingface_hub import ModelCard

    from mycelium_datasets.card import run_relative

    text = render_model_card(
        kind,
        backbone=args.backbone,
        metrics=metrics,
        lineage=lineage,
        run_folder=Path(args.run_dir).resolve().name,
        solver_path=run_relative(Path(home or out).parent, args.run_dir),
        version=STUDENT_VERSION,
    )
    ModelCard(text).save(out / "README.md")


def checkpoints_dir(run_dir: str | Path, kind: str) -> Path:
    """Where ``mycelium train`` keeps a student's checkpoints while it trains (a work folder of the run, never
    released, removed when training ends): ``DIR/.mycelium/work/checkpoints-<student>``."""
    return Path(run_dir) / ".mycelium" / "work" / f"checkpoints-{kind}"


def training_set(kind: str, run_dir: str | Path) -> Path:
    """The folder of the student set that trains ``kind`` in ``run_dir`` (``DIR/io_tags`` for the tagger); a
    missing one is a ``FileNotFoundError`` naming the command that builds it. ``mycelium train`` asks before it takes
    the run folder's lock, so a refused command writes nothing."""
    artifact = get_student(kind).artifact
    folder = Path(run_dir) / artifact
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} is missing; build it first: mycelium build {artifact} --out {run_dir}")
    return folder


class TrainingProgress(TrainerCallback):
    """Trainer's progress and logs as this package reports them (in place of Trainer's ``ProgressCallback`` and
    ``PrinterCallback``, which write log dicts to stdout): a bar over the optimizer steps on a terminal, and each log
    dict as a DEBUG line."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not args.disable_tqdm:
            self.bar = progress_bar(state.max_steps, self.desc, unit=" steps")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            logger.debug("%s, epoch %.2f: %s", self.desc, state.epoch or 0, logs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def align_special_tokens(model, tokenizer) -> None:
    """Give the model's config the tokenizer's pad / bos / eos ids (those the tokenizer defines), as Trainer would
    before training, warning that it did: the saved config is the same, and nothing is left for it to warn about."""
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(tokenizer, name) is not None:
            setattr(model.config, name, getattr(tokenizer, name))


def train(
    kind: str,
    args: StudentTrainingArguments,
    training_args,
    home: str | Path | None = None,
    stamp: dict | None = None,
    scratch_output_dir: bool = False,
) -> dict:
    """Train the student ``kind`` (``tagger``, ``classifier``, ``binder`` or ``decoder``) and save it; returns the
    evaluation metrics.

    ``training_args`` are used as given: evaluation, checkpointing and the metric that picks the best checkpoint are
    defaults of the command's parser (:func:`mycelium_run.stage.training_defaults`), never overwritten here. The
    binder's ``label_names`` are filled in when unset. ``home`` is the folder the model will finally live in, for
    its card (default: where it is saved). ``stamp`` adds fields to the saved ``mycelium.json`` (``mycelium run``
    adds its identity). With ``scratch_output_dir``, ``training_args.output_dir`` (the checkpoints) is a work folder
    of ours: emptied before training and removed once the model is saved."""
    import datasets
    from transformers import (
        AutoTokenizer,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
        Trainer,
        set_seed,
    )

    student = get_student(kind)
    run_dir = Path(args.run_dir)
    artifact = student.artifact
    data = datasets.load_dataset(str(training_set(kind, run_dir)))
    if len(data["train"]) == 0:
        raise ValueError(f"{run_dir / artifact} has no training rows")
    # every choice (the best checkpoint, the epochs) is made on a validation split carved from train; the test
    # split is read once, at the end, for the figures reported as unseen
    data["train"], validation = carve_validation(data["train"], run_dir, args.validation_fraction, training_args.seed)
    eval_sets = {}
    if len(validation):
        eval_sets["validation"] = validation
    if "test" in data and len(data["test"]):
        eval_sets["test"] = data["test"]
    if "validation" not in eval_sets and training_args.eval_strategy != "no":
        raise NoEvaluationSplitError(
            f"{run_dir / artifact} has too few training rows to hold out a validation split to choose checkpoints "
            f"on (--validation_fraction {args.validation_fraction}), and --eval_strategy is "
            f"{training_args.eval_strategy}; train without evaluation: --eval_strategy no --save_strategy no "
            "--load_best_model_at_end false"
        )
    backbone = resolve_backbone(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = Path(args.models_dir or run_dir / "models") / kind

    # the new head is initialised here, before Trainer seeds the process: seed it, or its weights depend on whatever
    # drew random numbers earlier in the process (two runs of the same data gave tagger F1 0.211 and 0.233)
    set_seed(training_args.seed)
    recipe = {
        "tagger": _tagger_recipe,
        "classifier": _classifier_recipe,
        "binder": _binder_recipe,
        "decoder": _decoder_recipe,
    }[kind]
    train_set, eval_sets, model, collator, compute_metrics = recipe(data, eval_sets, tokenizer, backbone, args)
    align_special_tokens(model, tokenizer)
    eval_set = eval_sets.get("validation") if training_args.eval_strategy != "no" else None
    if kind == "binder" and training_args.label_names is None:
        training_args.label_names = ["labels", "answer_labels"]
    if args.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    callbacks = [TrainingProgress(f"{kind} training")]
    if args.early_stopping_patience > 0 and eval_set is not None and training_args.load_best_model_at_end:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience))
    checkpoints = Path(training_args.output_dir)
    if scratch_output_dir and training_args.process_index == 0:  # only the main process writes checkpoints
        shutil.rmtree(checkpoints, ignore_errors=True)
    trainer = Trainer(
        callbacks=callbacks,
        optimizers=(_optimizer(model, training_args, args.head_learning_rate or student.head_learning_rate), None),
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=compute_metrics if eval_sets else None,
    )
    for printing in (ProgressCallback, PrinterCallback):  # TrainingProgress reports instead
        trainer.remove_callback(printing)
    distributed = f", rank {training_args.process_index} of {training_args.world_size}"
    logger.info(
        "training the %s on %d examples (%s%s)",
        kind,
        len(train_set),
        training_args.device,
        distributed if training_args.world_size > 1 else "",
    )
    trainer.train()
    trainer.remove_callback(EarlyStoppingCallback)  # training is over: the evaluations below stop nothing
    metrics = {}
    if "validation" in eval_sets:
        metrics.update(trainer.evaluate(eval_sets["validation"], metric_key_prefix="validation"))
    if "test" in eval_sets:  # read once, after every choice was made
        metrics.update(trainer.evaluate(eval_sets["test"], metric_key_prefix="eval"))
    if trainer.is_world_process_zero():
        lineage = _lineage(run_dir, artifact)
        what = {**training_stamp(kind, args, training_args, lineage), **(stamp or {})}
        history = trainer.state.log_history
        save_student(trainer.model, tokenizer, out, kind, args, metrics, lineage, home, what, history)
        if scratch_output_dir:
            shutil.rmtree(checkpoints, ignore_errors=True)
    return metrics


def training_stamp(kind: str, args: StudentTrainingArguments, training_args, lineage: dict) -> dict:
    """What ``DIR/models/<student>/mycelium.json`` says the weights were trained from and with: the student set (its
    artifact, version and fingerprint), the backbone, the student's options and every ``TrainingArguments`` option
    that is not transformers' default (no path of this machine). ``mycelium run`` adds its ``identity``, which it
    compares to decide whether a student is up to date; a student trained otherwise has ``identity`` null."""
    from transformers import TrainingArguments

    defaults = TrainingArguments(output_dir="unused").to_dict()
    given = training_args.to_dict()
    return {
        "student": kind,
        "version": STUDENT_VERSION,
        "identity": None,
        "trained_on": {k: lineage.get(k) for k in ("artifact", "version", "fingerprint")},
        "backbone": portable_backbone_name(args.backbone),
        "student_arguments": {k: v for k, v in asdict(args).items() if k not in ("run_dir", "models_dir", "backbone")},
        "training_arguments": {
            k: v for k, v in sorted(given.items()) if k != "output_dir" and (k not in defaults or v != defaults[k])
        },
    }


def validation_groups(rows, run_dir: Path) -> list[str]:
    """What keeps similar problems together when a validation split is carved: each row's template when the run's
    ``problems`` artifact records one (gsm_symbolic), else its id."""
    templates: dict[str, int] = {}
    if (run_dir / "problems" / "README.md").is_file():
        import datasets

        problems = datasets.load_dataset(str(run_dir / "problems"))
        for split in problems.values():
            if "template" in split.column_names:
                templates.update(zip(split["id"], split["template"]))
    return [f"template-{templates[i]}" if templates.get(i, -1) >= 0 else f"id-{i}" for i in rows["id"]]


def carve_validation(rows, run_dir: Path, fraction: float, seed: int = 0):
    """``(train, validation)``: about ``fraction`` of ``rows``' groups (templates, else ids:
    :func:`validation_groups`) by a stable hash, at least one group when there are two or more; ``fraction`` 0
    holds out nothing."""
    import hashlib

    groups = validation_groups(rows, run_dir)
    distinct = sorted(set(groups))
    if fraction <= 0 or len(distinct) < 2:
        return rows, rows.select([])

    def draw(group: str) -> float:
        return int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:12], 16) / 16**12

    held = {g for g in distinct if draw(g) < fraction} or {min(distinct, key=draw)}
    if len(held) == len(distinct):
        held.discard(max(distinct, key=draw))
    keep = [k for k, g in enumerate(groups) if g not in held]
    return rows.select(keep), rows.select([k for k, g in enumerate(groups) if g in held])


def check_tokenization(rows, tokenizer, backbone: str, built_with: str, n: int = 32) -> None:
    """Refuse token ids that another tokenizer made: the first ``n`` ``io_tags`` rows (``problem``, ``input_ids``)
    are tokenized again with ``tokenizer`` (the backbone's) and must give the stored ids (a row cut at the tokenizer's
    ``max_length`` is compared on its tokens before the cut). Raises :class:`TokenizerMismatchError` naming the
    tokenizer ``io_tags`` was built with (``built_with``) and the ``backbone``."""
    for row in rows.select(range(min(n, len(rows)))):
        stored = list(row["input_ids"])
        fresh = tokenizer(row["problem"])["input_ids"]
        cut = len(fresh) > len(stored) and fresh[: len(stored) - 1] == stored[:-1]
        if fresh != stored and not cut:
            raise TokenizerMismatchError(
                f"io_tags was tokenized with {built_with!r}, which is not the tokenizer of the backbone {backbone!r} "
                f"(problem {row['id']!r} gives other token ids); rebuild io_tags with --student_tokenizer {backbone} "
                f"or train with --backbone {built_with}"
            )


def _built_with(artifact_dir: Path) -> str:
    """The ``student_tokenizer`` an ``io_tags`` folder was built with, from its card."""
    from huggingface_hub import DatasetCard

    config = (DatasetCard.load(artifact_dir / "README.md").data.get("mycelium") or {}).get("config") or {}
    return str(config.get("student_tokenizer", "an unrecorded tokenizer"))


def _optimizer(model, training_args, head_learning_rate: float | None):
    """AdamW with two learning rates: ``training_args.learning_rate`` for the pretrained backbone and
    ``head_learning_rate`` for the layers the student adds (None when both are the same: Trainer's own)."""
    if not head_learning_rate:
        return None
    import torch

    groups = {True: [], False: []}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups[name.startswith(f"{model.base_model_prefix}.")].append(parameter)
    return torch.optim.AdamW(
        [
            {"params": groups[True], "lr": training_args.learning_rate},
            {"params": groups[False], "lr": head_learning_rate},
        ],
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        weight_decay=training_args.weight_decay,
    )


def _tagger_recipe(data, eval_sets, tokenizer, backbone, args):
    from transformers import DataCollatorForTokenClassification

    from mycelium_models.modeling_mycelium import MyceliumTagger

    # io_tags holds token ids: they are only right for the tokenizer they were made with
    check_tokenization(data["train"], tokenizer, args.backbone, _built_with(Path(args.run_dir) / "io_tags"))

    def prepare(batch):
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": [[1] * len(x) for x in batch["input_ids"]],
            # io_tags marks special tokens with ClassLabel's "no label" (-1); the loss ignores -100
            "labels": [[label if label >= 0 else -100 for label in row] for row in batch["labels"]],
        }

    train_set = features(data["train"], prepare)
    eval_sets = {k: features(v, prepare) for k, v in eval_sets.items()}
    metric = load_metric("io_span_f1")

    def compute_metrics(p):
        return metric.compute(predictions=p.predictions.argmax(-1).tolist(), references=p.label_ids.tolist())

    model = MyceliumTagger.from_backbone(backbone, backbone_name=portable_backbone_name(args.backbone))
    return train_set, eval_sets, model, DataCollatorForTokenClassification(tokenizer), compute_metrics


def classifier_labels(data) -> list[str]:
    """The classifier's label names (its ``id2label``): ``op_classes``' label set, its ``ClassLabel``'s names (the
    operation sequences of the training split, most frequent first, then any that only another split has: the model
    cannot predict those, so they count as errors, never dropped)."""
    return list(data["train"].features["label"].names)


def _classifier_recipe(data, eval_sets, tokenizer, backbone, args):
    from transformers import DataCollatorWithPadding

    from mycelium_models.modeling_mycelium import MyceliumOpClassifier

    names = classifier_labels({"train": data["train"], **eval_sets})
    label2id = {n: i for i, n in enumerate(names)}

    def prepare(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=args.max_length)
        return {**encoded, "labels": batch["label"]}  # the ClassLabel ids are the classifier's

    train_set = features(data["train"], prepare)
    eval_sets = {k: features(v, prepare) for k, v in eval_sets.items()}
    metric = load_metric("op_accuracy")

    def compute_metrics(p):
        return metric.compute(
            predictions=p.predictions.argmax(-1).tolist(), references=p.label_ids.tolist(), num_labels=len(names)
        )

    model = MyceliumOpClassifier.from_backbone(
        backbone,
        backbone_name=portable_backbone_name(args.backbone),
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id=label2id,
        pooling=args.pooling,
    )
    return train_set, eval_sets, model, DataCollatorWithPadding(tokenizer), compute_metrics


def binder_constants(train) -> list[str]:
    """The constant vocabulary of a ``bindings`` training split (pointer index -> value)."""
    found = {}
    for ops in train["ops"]:
        for op in ops:
            for o in op["operands"]:
                if o["kind"] == "constant" and o["index"] >= 0:
                    found[o["index"]] = o["value"]
    return [found.get(k, "0") for k in range(max(found, default=-1) + 1)]


def binding_rows(batch, *, tokenizer, op_names, max_length, max_operands) -> dict:
    """``batch -> batch``: ``bindings`` rows as the binder's features (see :mod:`mycelium_models.pointers`)."""
    from mycelium_models.pointers import encode

    out: dict = {}
    for problem, quantities, units, ops, answer in zip(
        batch["problem"], batch["quantities"], batch["units"], batch["ops"], batch["answer_op"]
    ):
        features = encode(
            tokenizer,
            problem,
            [(q["value"], q["char_start"], q["char_end"]) for q in quantities],
            [(u["char_start"], u["char_end"]) for u in units],
            [{**op, "answer": k == answer} for k, op in enumerate(ops)],
            op_names,
            max_length,
            max_operands,
        )
        for key, value in features.items():
            out.setdefault(key, []).append(value)
    return out


def _binder_recipe(data, eval_sets, tokenizer, backbone, args):
    from mycelium_datasets.dag import ARITY, MAX_OPERANDS
    from mycelium_datasets.op_graph import OP_NAMES
    from mycelium_models.modeling_mycelium import MyceliumBinder
    from mycelium_models.pointers import BinderCollator

    kwargs = {"tokenizer": tokenizer, "op_names": list(OP_NAMES), "max_length": args.max_length}
    kwargs["max_operands"] = MAX_OPERANDS
    train_set = features(data["train"], binding_rows, kwargs)
    eval_sets = {k: features(v, binding_rows, kwargs) for k, v in eval_sets.items()}
    metric = load_metric("binding_accuracy")

    def compute_metrics(p):
        (pointers, answers), (labels, answer_labels) = p.predictions, p.label_ids
        return metric.compute(
            predictions=pointers.tolist(),
            references=labels.tolist(),
            answer_scores=answers.tolist(),
            answer_labels=answer_labels.tolist(),
        )

    model = MyceliumBinder.from_backbone(
        backbone,
        backbone_name=portable_backbone_name(args.backbone),
        op_names=list(OP_NAMES),
        constants=binder_constants(data["train"]),
        arity={op: list(bounds) for op, bounds in ARITY.items()},
        max_operands=MAX_OPERANDS,
        max_input_tokens=args.max_length,
    )
    return train_set, eval_sets, model, BinderCollator(tokenizer.pad_token_id, MAX_OPERANDS), compute_metrics


def _decoder_recipe(data, eval_sets, tokenizer, backbone, args):
    from mycelium_models.modeling_mycelium import MyceliumStepDecoder, MyceliumStepDecoderConfig
    from mycelium_models.steps import StepCollator, program_rows, step_constants

    constants = step_constants(data["train"]["ops"], args.min_constant_programs)
    max_steps = MyceliumStepDecoderConfig().max_steps
    kwargs = {"tokenizer": tokenizer, "constants": constants, "max_length": args.max_length, "max_steps": max_steps}

    errors, dropped = collections.Counter(), {}

    def programs(rows, split):
        encoded = features(rows, program_rows, kwargs)
        found = [e for e in encoded["step_error"] if e]
        errors.update(found)
        if found:
            dropped[split] = f"{len(found)} of {len(rows)}"
        return encoded.filter(lambda e: not e, input_columns="step_error").remove_columns("step_error")

    train_set = programs(data["train"], "train")
    eval_sets = {k: programs(v, k) for k, v in eval_sets.items()}
    if errors:  # counted, never silently lost: these programs use what a step cannot write
        logger.info(
            "decoder: problems that are not step programs (%s): %s",
            ", ".join(f"{split} {n}" for split, n in dropped.items()),
            dict(errors.most_common(5)),
        )

    def compute_metrics(p):
        hits = np.asarray(p.predictions)
        counted = hits >= 0
        rows = counted.any(-1)
        whole = ((hits == 1) | ~counted).all(-1) & rows
        return {
            "step_accuracy": float((hits == 1).sum() / max(1, counted.sum())),
            "program_accuracy": float(whole.sum() / max(1, rows.sum())),
        }

    model = MyceliumStepDecoder.from_backbone(
        backbone,
        backbone_name=portable_backbone_name(args.backbone),
        constants=constants,
        max_steps=max_steps,
        max_input_tokens=args.max_length,
    )
    return train_set, eval_sets, model, StepCollator(tokenizer.pad_token_id), compute_metrics


def save_student(
    model,
    tokenizer,
    out: Path,
    kind: str,
    args: StudentTrainingArguments,
    metrics,
    lineage,
    home: Path | None = None,
    stamp: dict | None = None,
    log_history: list[dict] | None = None,
) -> None:
    """Everything a model folder holds, as the Hub needs it: safetensors, config with ``auto_map``, the modeling
    file the ``auto_map`` names (copied by ``save_pretrained`` because the classes are registered for the Auto
    classes), tokenizer, model card (naming ``home``, the folder the model will live in), metrics, Trainer's
    ``log_history`` (``training_log.json``) and ``mycelium.json`` (``stamp``, see
    :func:`training_stamp`). No ``training_args.bin`` (a pickle), and no path of this machine. The stamp of the
    model the folder held before is removed first and the new one written last, so a stamp always describes the
    weights beside it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mycelium.json").unlink(missing_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.model_max_length = args.max_length  # what the student was trained to read: the solver truncates there
    tokenizer.save_pretrained(str(out))
    write_model_card(out, kind, args, metrics, lineage, home)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if log_history is not None:
        (out / "training_log.json").write_text(json.dumps(log_history, indent=2))
    if stamp is not None:
        (out / "mycelium.json").write_text(json.dumps(stamp, indent=2))
