"""The students: model classes with two backbone families, Trainer recipes, the no-CoT solver, DDP training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    Qwen2Config,
    TrainingArguments,
)

import mycelium_models  # noqa: F401 - registers the Auto classes
from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.pipeline import split_options
from mycelium_models import MyceliumOpClassifier, MyceliumOpClassifierConfig, MyceliumTagger, MyceliumTaggerConfig
from mycelium_models.solver import MyceliumSolver
from mycelium_models.train import StudentTrainingArguments, io_span_f1, span_set, train

TINY_BACKBONES = {
    "bert": BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ).to_dict(),
    "qwen2": Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
    ).to_dict(),
}


@pytest.mark.parametrize("family", ["bert", "qwen2"])
def test_model_classes_round_trip_through_the_auto_classes(family, tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(1, 64, (2, 7))
    mask = torch.ones_like(ids)
    tagger = MyceliumTagger(MyceliumTaggerConfig(backbone_config=TINY_BACKBONES[family])).eval()
    out = tagger(input_ids=ids, attention_mask=mask, labels=torch.zeros_like(ids))
    assert out.loss is not None and out.logits.shape == (2, 7, 2)
    pooling = "last" if family == "qwen2" else "mean"
    classifier = MyceliumOpClassifier(
        MyceliumOpClassifierConfig(backbone_config=TINY_BACKBONES[family], num_labels=4, pooling=pooling)
    ).eval()
    out = classifier(input_ids=ids, attention_mask=mask, labels=torch.tensor([1, 3]))
    assert out.loss is not None and out.logits.shape == (2, 4)
    tagger.save_pretrained(tmp_path / "t")
    classifier.save_pretrained(tmp_path / "c")
    assert (tmp_path / "t" / "model.safetensors").is_file()
    t2 = AutoModelForTokenClassification.from_pretrained(tmp_path / "t").eval()
    c2 = AutoModelForSequenceClassification.from_pretrained(tmp_path / "c").eval()
    assert type(t2) is MyceliumTagger and type(c2) is MyceliumOpClassifier
    with torch.no_grad():
        assert torch.allclose(
            t2(input_ids=ids, attention_mask=mask).logits, tagger(input_ids=ids, attention_mask=mask).logits
        )
        assert torch.allclose(
            c2(input_ids=ids, attention_mask=mask).logits, classifier(input_ids=ids, attention_mask=mask).logits
        )
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTokenClassification"].endswith("MyceliumTagger")  # ready for the Hub


def test_span_f1():
    assert span_set([-100, 1, 1, 0, 1, -100]) == {(1, 3), (4, 5)}
    gold = [[-100, 1, 1, 0, 1, 0]]
    import numpy as np

    assert io_span_f1(np.array([[0, 1, 1, 0, 0, 0]]), np.array(gold))["f1"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, teacher_path):
    out = tmp_path_factory.mktemp("students")
    configs = split_options({"size": 40})
    for name in BUILDERS:
        BUILDERS[name](out, configs[name]).build()
    return out


def training_args(tmp_path, epochs=2):
    return TrainingArguments(
        output_dir=str(tmp_path / "ckpt"),
        num_train_epochs=epochs,
        learning_rate=1e-4,
        per_device_train_batch_size=16,
        report_to="none",
        seed=0,
        use_cpu=True,
    )


@pytest.fixture(scope="module")
def models_dir(run_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    for kind in ("tagger", "classifier"):
        metrics = train(kind, StudentTrainingArguments(run_dir=str(run_dir)), training_args(tmp / kind))
        assert ("eval_f1" if kind == "tagger" else "eval_accuracy") in metrics
    return run_dir / "models"


def test_recipes_save_loadable_students_with_cards(models_dir):
    for kind, metric in (("tagger", "f1"), ("classifier", "accuracy")):
        folder = models_dir / kind
        for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "metrics.json"):
            assert (folder / name).is_file(), name
        card = (folder / "README.md").read_text()
        assert metric in card and "fingerprint" in card and ("io_tags" in card or "op_classes" in card)
        from huggingface_hub import ModelCard

        assert "mycelium" in ModelCard.load(folder / "README.md").data.tags


def test_solver_answers_without_cot_and_never_raises(models_dir):
    solver = MyceliumSolver.from_pretrained(models_dir, device="cpu")
    traces = solver.solve(
        [
            "Tom has 3 apples and buys 4 more apples. How many apples does he have now?",
            "",
            "A problem with no numbers at all?",
            "Divide 5 by 0 and add 2 to 7.",
        ]
    )
    assert len(traces) == 4
    for t in traces:
        assert (t["answer"] is None) == (t["stage"] is not None)
        assert t["stage"] in (None, "SEGMENTATION", "CLASSIFICATION", "EXTRACTION", "EXECUTION")
    assert traces[1]["stage"] == "SEGMENTATION"


def test_solver_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tagger/config.json is missing"):
        MyceliumSolver.from_pretrained(tmp_path)


def test_training_runs_on_two_processes_with_ddp(run_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    models = tmp_path / "models"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29547",
            "-m",
            "mycelium_datasets.cli",
            "train",
            "classifier",
            "--run_dir",
            str(run_dir),
            "--models_dir",
            str(models),
            "--num_train_epochs",
            "1",
            "--use_cpu",
            "--ddp_backend",
            "gloo",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 of 2" in result.stderr and "rank 1 of 2" in result.stderr
    assert (models / "classifier" / "model.safetensors").is_file()
    assert AutoModelForSequenceClassification.from_pretrained(models / "classifier") is not None
