"""Trainer recipes for the two students: ``mycelium train tagger`` and ``mycelium train classifier``.

Each reads its training set from a run folder (``DIR/io_tags`` or ``DIR/op_classes``, the ``train`` split for
training and ``test`` — unseen templates — for evaluation), fine-tunes a :class:`MyceliumTagger` /
:class:`MyceliumOpClassifier` around the backbone with ``Trainer``, keeps the best checkpoint (span F1 for the tagger,
accuracy for the classifier), reports
span-level IO F1 / accuracy and macro-F1, and saves safetensors, config, tokenizer and a model card with the
metrics and the training data's lineage into ``DIR/models/tagger`` or ``DIR/models/classifier``. The recipe runs
unchanged under ``accelerate launch`` / ``torchrun`` (Trainer handles DDP).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mycelium_datasets.defaults import DEFAULT_BACKBONE, EMBEDDED_BACKBONES, resolve_backbone
from mycelium_models.metrics import accuracy_macro_f1, io_span_f1, load_metric, span_set  # noqa: F401 - re-exported
from mycelium_models.students import get_student

logger = logging.getLogger(__name__)

# Version of the released students (the release tag is v<version>); bump it when the model classes change.
STUDENT_VERSION = "1.0.0"
# Licenses of backbones we know; the students inherit them (anything else is "other": check the backbone's terms).
BACKBONE_LICENSES = {
    "sentence-transformers/all-MiniLM-L6-v2": "apache-2.0",
    "Qwen/Qwen2-0.5B": "apache-2.0",
    "Qwen/Qwen2.5-0.5B": "apache-2.0",
}
# The card's usage block; a release replaces what is between these markers with a Hub snippet.
USE_BEGIN, USE_END = "<!-- mycelium:use -->", "<!-- /mycelium:use -->"


@dataclass
class StudentTrainingArguments:
    """What to train, from where, into where (the rest are ``transformers.TrainingArguments``)."""

    run_dir: str = field(metadata={"help": "Run folder holding io_tags / op_classes."})
    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": "Student backbone: embedded name, id or path."})
    models_dir: str | None = field(default=None, metadata={"help": "Where models go (default: RUN_DIR/models)."})
    max_length: int = field(default=256, metadata={"help": "Longest input in tokens."})
    pooling: str = field(default="mean", metadata={"help": "Classifier pooling: mean (encoders) or last (decoders)."})
    freeze_embeddings: bool = field(
        default=True,
        metadata={
            "help": "Keep the backbone's input embeddings frozen (half of MiniLM's weights: faster steps, less "
            "overfitting on small sets); --no_freeze_embeddings trains them too."
        },
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


def write_model_card(out: Path, kind: str, args: StudentTrainingArguments, metrics: dict, lineage: dict) -> None:
    """The model card: YAML (license, base_model, pipeline_tag, version, the training data's lineage, the backbone's
    identity, code version) and a body with the metrics and how to load it."""
    from huggingface_hub import ModelCard, ModelCardData

    from mycelium_datasets.card import code_version
    from mycelium_datasets.provenance import model_identity

    base_model = backbone_upstream(args.backbone)
    data = ModelCardData(
        library_name="transformers",
        license=BACKBONE_LICENSES.get(base_model or "", "other"),
        language=["en"],
        tags=["mycelium", "math-word-problems", kind],
        base_model=base_model,
        pipeline_tag=get_student(kind).pipeline_tag,
        version=STUDENT_VERSION,
        mycelium={
            "student": kind,
            "code_version": code_version(),
            "backbone": model_identity(args.backbone),
            "training_data": {k: v for k, v in lineage.items() if k != "provenance"},
            "lineage": lineage.get("provenance") or {},
            "metrics": {k: v for k, v in sorted(metrics.items()) if isinstance(v, (int, float))},
        },
    )
    metric_lines = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()) if isinstance(v, float))
    task = get_student(kind).task
    text = f"""---
{data.to_yaml()}
---

# Mycelium {kind}

A Mycelium student: {task}. It reads the problem only: no chain of thought at inference.

- backbone: `{args.backbone}`
- training data: `{lineage.get("artifact")}` v{lineage.get("version")} (fingerprint `{lineage.get("fingerprint")}`,
  rows {lineage.get("rows")}), from the run folder `{args.run_dir}`

## Evaluation (the `test` split: unseen templates)

| metric | value |
| --- | --- |
{metric_lines}

## Use

{USE_BEGIN}
```python
import mycelium_models  # registers the classes with the Auto classes
from mycelium_models.solver import MyceliumSolver

solver = MyceliumSolver.from_pretrained("{out.parent}")
print(solver.solve(["Tom has 3 apples and buys 4 more. How many apples does he have?"])[0]["answer"])
```
{USE_END}

## Intended use and limits

Research on no-CoT math word problem solving. Trained on execution-validated labels of one teacher and one
problem source; expect it to fail on problem styles it has not seen, and check answers before relying on them.
"""
    ModelCard(text).save(out / "README.md")


def train(kind: str, args: StudentTrainingArguments, training_args) -> dict:
    """Train ``kind`` (``tagger`` or ``classifier``) and save it; returns the evaluation metrics."""
    import datasets
    from transformers import AutoTokenizer, DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer

    from mycelium_models.modeling_mycelium import MyceliumOpClassifier, MyceliumTagger

    student = get_student(kind)
    run_dir = Path(args.run_dir)
    artifact = student.artifact
    if not (run_dir / artifact / "README.md").is_file():
        raise FileNotFoundError(
            f"{run_dir / artifact} is missing; build it first: mycelium build {artifact} --out {run_dir}"
        )
    data = datasets.load_dataset(str(run_dir / artifact))
    if len(data["train"]) == 0:
        raise ValueError(f"{run_dir / artifact} has no training rows")
    backbone = resolve_backbone(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = Path(args.models_dir or run_dir / "models") / kind
    eval_set = data["test"] if "test" in data and len(data["test"]) else None

    if kind == "tagger":

        def prepare(batch):
            return {
                "input_ids": batch["input_ids"],
                "attention_mask": [[1] * len(x) for x in batch["input_ids"]],
                "labels": batch["labels"],
            }

        train_set = data["train"].map(prepare, batched=True, remove_columns=data["train"].column_names)
        eval_set = eval_set.map(prepare, batched=True, remove_columns=eval_set.column_names) if eval_set else None
        model = MyceliumTagger.from_backbone(backbone)
        collator = DataCollatorForTokenClassification(tokenizer)

        metric = load_metric("io_span_f1")

        def compute_metrics(p):
            return metric.compute(predictions=p.predictions.argmax(-1).tolist(), references=p.label_ids.tolist())

    else:
        names = data["train"].features["label"].names

        def prepare(batch):
            encoded = tokenizer(batch["text"], truncation=True, max_length=args.max_length)
            return {**encoded, "labels": batch["label"]}

        train_set = data["train"].map(prepare, batched=True, remove_columns=data["train"].column_names)
        eval_set = eval_set.map(prepare, batched=True, remove_columns=eval_set.column_names) if eval_set else None
        model = MyceliumOpClassifier.from_backbone(
            backbone,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            pooling=args.pooling,
        )
        collator = DataCollatorWithPadding(tokenizer)

        metric = load_metric("op_accuracy")

        def compute_metrics(p):
            return metric.compute(
                predictions=p.predictions.argmax(-1).tolist(), references=p.label_ids.tolist(), num_labels=len(names)
            )

    if eval_set is not None:
        training_args.eval_strategy = "epoch"
        training_args.save_strategy = "epoch"
        training_args.load_best_model_at_end = True
        training_args.metric_for_best_model = student.best_metric
        training_args.greater_is_better = True
        training_args.save_total_limit = 1
    else:
        training_args.eval_strategy = "no"
        training_args.save_strategy = "no"
    if args.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        compute_metrics=compute_metrics if eval_set is not None else None,
    )
    logger.info(
        "rank %d of %d: training the %s on %d examples",
        training_args.process_index,
        training_args.world_size,
        kind,
        len(train_set),
    )
    trainer.train()
    metrics = trainer.evaluate() if eval_set is not None else {}
    if trainer.is_world_process_zero():
        save_student(trainer.model, tokenizer, out, kind, args, metrics, _lineage(run_dir, artifact))
        (out / "training_log.json").write_text(json.dumps(trainer.state.log_history, indent=2))
    return metrics


def save_student(model, tokenizer, out: Path, kind: str, args: StudentTrainingArguments, metrics, lineage) -> None:
    """Everything a model folder holds, as the Hub needs it: safetensors, config with ``auto_map``, the modeling
    file the ``auto_map`` names (copied by ``save_pretrained`` because the classes are registered for the Auto
    classes), tokenizer, model card and metrics. No ``training_args.bin`` (a pickle)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    write_model_card(out, kind, args, metrics, lineage)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
