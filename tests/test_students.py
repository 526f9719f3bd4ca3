"""The students: model classes with two backbone families, Trainer recipes, the no-CoT solver, DDP training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    Qwen2Config,
)

import mycelium_models  # noqa: F401 - registers the Auto classes
from mycelium_models import MyceliumOpClassifier, MyceliumOpClassifierConfig, MyceliumTagger, MyceliumTaggerConfig
from mycelium_models.solver import MyceliumSolver
from mycelium_models.train import io_span_f1, span_set
from mycelium_run.job import run, split_options

from conftest import read_artifact, run_as_hub_user, write_jsonl

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


@pytest.mark.parametrize("family", ["bert", "qwen2"])
def test_the_binder_round_trips_and_decodes_within_arity_and_without_cycles(family, tmp_path):
    from transformers import AutoModel

    from mycelium_datasets.dag import ARITY, dependency_order
    from mycelium_datasets.op_graph import OP_NAMES
    from mycelium_models.modeling_mycelium import MyceliumBinder, MyceliumBinderConfig

    torch.manual_seed(0)
    config = MyceliumBinderConfig(
        backbone_config=TINY_BACKBONES[family],
        op_names=list(OP_NAMES),
        constants=["2", "100"],
        arity={k: list(v) for k, v in ARITY.items()},
        pointer_size=16,
    )
    binder = MyceliumBinder(config).eval()
    names = ["mul", "sub", "floor", "add"]
    batch = {
        "input_ids": torch.randint(1, 64, (2, 12)),
        "attention_mask": torch.ones(2, 12, dtype=torch.long),
        "quantity_spans": torch.tensor([[[1, 2], [4, 5], [7, 9]], [[2, 3], [0, 0], [0, 0]]]),
        "quantity_values": torch.rand(2, 3, 3),
        "unit_spans": torch.tensor([[[0, 6], [6, 11]], [[0, 11], [0, 0]]]),
        "op_units": torch.tensor([[0, 0, 1, 1], [0, -1, -1, -1]]),
        "op_ids": torch.tensor([[OP_NAMES.index(n) for n in names], [OP_NAMES.index("add"), -1, -1, -1]]),
    }
    labels = torch.full((2, 4, 7), -100)
    labels[0, 0, :3] = torch.tensor([1, 2, 30_000])  # mul(q1, q2) END
    labels[0, 1, :3] = torch.tensor([20_000, 10_001, 30_000])  # sub(op0, c1) END
    labels[1, 0, :3] = torch.tensor([0, 10_000, 30_000])
    answer = torch.tensor([[0, 0, 0, 1], [1, -100, -100, -100]])
    out = binder(**batch, labels=labels, answer_labels=answer)
    assert out.loss is not None and out.pointer_predictions.shape == (2, 4, 7)
    binder.save_pretrained(tmp_path / "b")
    again = AutoModel.from_pretrained(tmp_path / "b").eval()
    assert type(again) is MyceliumBinder and again.config.constants == ["2", "100"]
    decoded, decoded_again = binder.decode(**batch), again.decode(**batch)
    assert decoded == decoded_again and again.config.binding_beams == 4
    greedy = binder.decode(**batch, num_beams=1)
    for problem, n_ops in zip(decoded + greedy, (4, 1, 4, 1)):
        assert len(problem["ops"]) == n_ops and 0 <= problem["answer_op"] < n_ops
        for name, pointers in zip(names, problem["ops"]):
            low, high = ARITY[name]
            assert len(pointers) <= high and (len(pointers) >= low or not pointers)
        ops = [{"op": "add", "operands": [{"kind": k, "index": i} for k, i in p]} for p in problem["ops"]]
        assert sorted(dependency_order(ops)) == list(range(n_ops))  # no cycle


REMOTE_CODE_USER = """
import sys
import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

tagger_dir, classifier_dir = sys.argv[1:]
tagger = AutoModelForTokenClassification.from_pretrained(tagger_dir, trust_remote_code=True)
assert type(tagger).__name__ == "MyceliumTagger" and "mycelium_models" not in sys.modules
assert not {"mycelium_tagger", "mycelium_op_classifier", "mycelium_binder"} & set(CONFIG_MAPPING), "registered"
for load in (AutoConfig.from_pretrained, AutoModelForSequenceClassification.from_pretrained):
    try:
        load(classifier_dir, trust_remote_code=False)  # must not load from the tagger's module
    except ValueError as exc:
        assert "trust_remote_code" in str(exc), exc
    else:
        raise AssertionError(f"{load.__qualname__} loaded the classifier without trust_remote_code")
classifier = AutoModelForSequenceClassification.from_pretrained(classifier_dir, trust_remote_code=True)
assert type(classifier).__name__ == "MyceliumOpClassifier"
print("ok")
"""


def test_remote_code_registers_only_the_model_it_loads(tmp_path):
    """The Hub's users load a student with trust_remote_code and without our package: running its
    modeling_mycelium.py must not register the other students for the whole process."""
    torch.manual_seed(0)
    MyceliumTagger(MyceliumTaggerConfig(backbone_config=TINY_BACKBONES["bert"])).save_pretrained(tmp_path / "t")
    classifier_config = MyceliumOpClassifierConfig(backbone_config=TINY_BACKBONES["bert"], num_labels=3)
    MyceliumOpClassifier(classifier_config).save_pretrained(tmp_path / "c")
    assert (tmp_path / "t" / "modeling_mycelium.py").is_file()
    result = run_as_hub_user(REMOTE_CODE_USER, [str(tmp_path / "t"), str(tmp_path / "c")], tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_students_checkpoint_activations_through_their_backbone():
    torch.manual_seed(0)
    ids = torch.randint(1, 64, (2, 7))
    for family in ("bert", "qwen2"):
        config = MyceliumOpClassifierConfig(backbone_config=TINY_BACKBONES[family], num_labels=3)
        classifier = MyceliumOpClassifier(config).train()
        assert classifier.supports_gradient_checkpointing
        # activation_checkpointing_enable is the name since transformers 5.2x; gradient_checkpointing_enable before
        (getattr(classifier, "activation_checkpointing_enable", None) or classifier.gradient_checkpointing_enable)()
        marked = [
            m.gradient_checkpointing for m in classifier.backbone.modules() if hasattr(m, "gradient_checkpointing")
        ]
        assert marked and all(marked)  # the backbone's layers recompute their activations
        out = classifier(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 2]))
        out.loss.backward()
        assert classifier.backbone.get_input_embeddings().weight.grad.abs().sum() > 0  # gradients reach the bottom


def test_span_f1():
    assert span_set([-100, 1, 1, 0, 1, -100]) == {(1, 3), (4, 5)}
    gold = [[-100, 1, 1, 0, 1, 0]]
    import numpy as np

    assert io_span_f1(np.array([[0, 1, 1, 0, 0, 0]]), np.array(gold))["f1"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, teacher_path):
    """``mycelium run`` end to end on 40 gsm_symbolic problems: artifacts, the four students, eval, report."""
    out = tmp_path_factory.mktemp("students")
    summary = run(out, split_options({"size": 40, "student_epochs": 2}))
    assert "e2e_accuracy_test" in summary["students"]
    return out


@pytest.fixture(scope="module")
def models_dir(run_dir):
    for kind, metric in (
        ("tagger", "eval_f1"),
        ("classifier", "eval_accuracy"),
        ("binder", "eval_op_accuracy"),
        ("decoder", "eval_step_accuracy"),
    ):
        metrics = json.loads((run_dir / "models" / kind / "metrics.json").read_text())
        assert metric in metrics and f"validation_{metric[5:]}" in metrics  # chosen on validation, read on test
    return run_dir / "models"


def test_recipes_save_loadable_students_with_cards(models_dir):
    for kind, metric, artifact in (
        ("tagger", "f1", "io_tags"),
        ("classifier", "accuracy", "op_classes"),
        ("binder", "op_accuracy", "bindings"),
        ("decoder", "step_accuracy", "bindings"),
    ):
        folder = models_dir / kind
        for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "metrics.json"):
            assert (folder / name).is_file(), name
        card = (folder / "README.md").read_text()
        assert metric in card and "fingerprint" in card and artifact in card
        from huggingface_hub import ModelCard

        assert "mycelium" in ModelCard.load(folder / "README.md").data.tags


def test_cards_report_what_training_and_the_evaluation_measured(run_dir, models_dir):
    """Each card's model-index holds the metrics training reported (metrics.json), on the student set's test split,
    and the run's end-to-end accuracy (eval/eval.json) on the problems' test split; runtime figures stay out."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from mycelium_models.model_card import E2E_TASK_TYPE
    from mycelium_models.students import STUDENTS

    evaluation = json.loads((run_dir / "eval" / "eval.json").read_text())
    for kind, student in STUDENTS.items():
        reported = json.loads((models_dir / kind / "metrics.json").read_text())
        card = ModelCard.load(models_dir / kind / "README.md")
        results = card.data.eval_results
        (e2e,) = [r for r in results if r.task_type == E2E_TASK_TYPE]
        assert (e2e.metric_type, e2e.metric_value) == ("accuracy", evaluation["accuracy"])
        assert (e2e.dataset_type, e2e.dataset_split) == ("problems", evaluation["split"])
        own = {r.metric_type: r for r in results if r is not e2e}
        assert {m for m, _ in student.headline} <= set(own)
        for metric, r in own.items():
            assert r.metric_value == reported[f"eval_{metric}"]
            assert (r.dataset_type, r.dataset_split) == (student.artifact, "test")
        assert not set(own) & {"runtime", "samples_per_second", "steps_per_second", "loss", "epoch"}
        assert card.data.mycelium["training"]["eval_runtime"] == reported["eval_runtime"]
        assert model_index_to_eval_results(card.data.to_dict()["model-index"])[1] == results


def test_a_run_folder_holds_no_path_of_this_machine(run_dir, models_dir):
    """Everything the run writes is meant to travel (Hub repos, a shared folder): no file names the run folder by its
    absolute path, the home folder or the environment the package runs from. `.mycelium/` (markers and work files,
    local bookkeeping, never released) and `loop/` (written by `mycelium loop`, not by the run) are not scanned."""
    from mycelium_datasets.defaults import resolve_backbone

    machine = {
        str(run_dir.resolve()),
        os.path.expanduser("~") + os.sep,
        sys.prefix,
        str(Path(resolve_backbone()).resolve().parents[1]),  # the site-packages holding the embedded backbone
    }
    written = [
        path
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and path.relative_to(run_dir).parts[0] not in (".mycelium", "loop")
    ]
    assert {p.relative_to(run_dir).parts[0] for p in written} >= {"io_tags", "models", "eval", "report"}
    found = [
        f"{path.relative_to(run_dir)}: {text}"
        for path in written
        for text in machine
        if text.encode() in path.read_bytes()
    ]
    assert not found, found
    config = json.loads((models_dir / "tagger" / "config.json").read_text())
    assert (
        config["backbone_name"]
        == config["backbone_config"]["_name_or_path"]
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    card = (models_dir / "tagger" / "README.md").read_text()
    assert f'MyceliumSolver.from_pretrained("{run_dir.name}/models")' in card  # where it lives, not its work folder


@pytest.mark.xfail(
    strict=False,
    reason="pending, a finding: on the 40-problem, 2-epoch test run the tagger's best span F1 is 0.0 (random tags "
    "0.001) and the classifier's accuracy 0.308 equals always answering 'mul' (measured); the students learn "
    "nothing measurable at test scale (not strict: the training recipe changes with each student change)",
)
def test_the_students_learn_more_than_a_baseline_gives(run_dir, models_dir):
    """Learning floors on the small real run: the tagger's span F1 above all-O (0) and above random tags at the
    training split's OP rate; the classifier's accuracy above always answering the training split's commonest
    label. The floors are read on the test split, the set the metrics were measured on."""
    import collections

    import numpy as np

    io_tags = read_artifact(run_dir / "io_tags")
    train_tokens = [label for row in io_tags["train"] for label in row["labels"] if label >= 0]  # -1: no label
    op_rate = sum(train_tokens) / len(train_tokens)
    gold = [[label if label >= 0 else -100 for label in row["labels"]] for row in io_tags["test"]]
    assert io_span_f1([[0] * len(g) for g in gold], gold)["f1"] == 0.0
    rng = np.random.default_rng(0)
    random_f1 = np.mean(
        [io_span_f1([(rng.random(len(g)) < op_rate).astype(int) for g in gold], gold)["f1"] for _ in range(20)]
    )
    tagger = json.loads((models_dir / "tagger" / "metrics.json").read_text())
    assert tagger["eval_f1"] > max(0.0, random_f1), (tagger["eval_f1"], random_f1)

    op_classes = read_artifact(run_dir / "op_classes")
    commonest, _ = collections.Counter(row["label"] for row in op_classes["train"]).most_common(1)[0]
    majority = np.mean([row["label"] == commonest for row in op_classes["test"]])
    classifier = json.loads((models_dir / "classifier" / "metrics.json").read_text())
    assert classifier["eval_accuracy"] > majority, (classifier["eval_accuracy"], majority)


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


SIMPLE = [  # one- and two-step problems with their reference solutions
    ("Tom has 3 apples and buys 4 more apples. How many apples does he have now?", "3 + 4 = 7\n#### 7", "7"),
    ("A box holds 6 eggs. How many eggs are in 5 boxes?", "6 * 5 = 30\n#### 30", "30"),
    ("Sara had 20 dollars and spent 8 dollars. How many dollars are left?", "20 - 8 = 12\n#### 12", "12"),
    ("Ben shares 24 candies equally among 4 friends. How many does each get?", "24 / 4 = 6\n#### 6", "6"),
    (
        "Mia buys 3 packs of 5 pencils. She loses 2 pencils. How many pencils does she have?",
        "3 * 5 = 15\n15 - 2 = 13\n#### 13",
        "13",
    ),
    (
        "A farmer has 7 rows of 8 trees. He cuts down 6 trees. How many trees are left?",
        "7 * 8 = 56\n56 - 6 = 50\n#### 50",
        "50",
    ),
]


def test_the_solvers_executor_answers_simple_problems_from_their_reference_bindings():
    """Rung (a) on fixed one- and two-step problems: their reference DAGs, bound and run by the solver's executor,
    give every gold, so a failure of the test below is the students'."""
    from mycelium_datasets.defaults import load_spacy
    from mycelium_models.evaluation import reference_binding, reference_from_solution
    from mycelium_models.solver import execute_into_trace

    nlp = load_spacy(None)
    for problem, solution, gold in SIMPLE:
        binding = reference_binding(problem, reference_from_solution(problem, solution, gold, nlp(problem)))
        assert binding is not None, problem
        units = [{**u, "ops": []} for u in binding["units"]]
        ops = [{"op": op["op"], "unit": op["unit"]} for op in binding["ops"]]
        pointers = [op["operands"] for op in binding["ops"]]
        trace = execute_into_trace(
            problem, {"units": units, "stage": None, "answer": None}, ops, pointers, binding["answer_op"], []
        )
        assert trace["answer"] == gold, (problem, trace)


@pytest.mark.xfail(
    strict=False,
    reason="pending: the students of the 40-problem, 2-epoch test run answer 1 of these 6 (measured; 4 needed); tiny "
    "students trained held-in on six such problems took over 4 min per student here, beyond the suite's time "
    "budget (not strict: an XPASS is reported by -ra and the mark should then go)",
)
def test_the_solver_answers_simple_one_and_two_step_problems(models_dir):
    solver = MyceliumSolver.from_pretrained(models_dir, device="cpu")
    traces = solver.solve([problem for problem, _, _ in SIMPLE])
    right = sum(t["answer"] == gold for t, (_, _, gold) in zip(traces, SIMPLE))
    assert right >= 4, [(t["answer"], gold) for t, (_, _, gold) in zip(traces, SIMPLE)]


def test_the_solvers_classifier_is_the_fallback_of_op_parsing_tier3(models_dir):
    from test_op_pairs import PIZZA, PIZZA_WORDS, spans_of

    from mycelium_datasets.op_graph import validate_trace
    from mycelium_models.solver import MyceliumSolver

    solver = MyceliumSolver.from_pretrained(models_dir)
    texts = ["There are 4 pieces of pizza left because 22 take away 18 leaves 4.", "She buys 3 more."]
    k = min(3, solver.classifier.config.num_labels)
    ranked = solver.rank_operations(texts, k=k)
    labels = {tuple(label.split("+")) for label in solver.classifier.config.id2label.values()}
    assert all(len(r) == len(set(r)) == k and set(r) <= labels for r in ranked)
    assert [list(r[0]) for r in ranked] == solver.classify(texts)  # the top sequence is the classifier's answer
    spans = spans_of(*PIZZA_WORDS)
    row = validate_trace(PIZZA, "2", spans, [[] for _ in spans], fallback=solver)
    assert row["validated"] and {op["parse_tier"] for op in row["ops"]} == {3}
    assert validate_trace(PIZZA, "2", spans, [[] for _ in spans])["op_status"] == "no_ops"  # off: not read


def test_solver_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tagger/config.json is missing"):
        MyceliumSolver.from_pretrained(tmp_path)


@pytest.mark.parametrize("kind, port", [("classifier", 29547), ("binder", 29548)])
def test_training_runs_on_two_processes_with_ddp(run_dir, tmp_path, kind, port):
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
            str(port),
            "-m",
            "mycelium_run.cli",
            "train",
            kind,
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
    assert (models / kind / "model.safetensors").is_file()
    import transformers

    from mycelium_models.students import STUDENTS

    loaded = getattr(transformers, STUDENTS[kind].auto_class).from_pretrained(models / kind)
    assert type(loaded).__name__ == {"classifier": "MyceliumOpClassifier", "binder": "MyceliumBinder"}[kind]


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, teacher_path) -> str:
    """A tiny randomly initialised Qwen2 backbone folder, with the embedded teacher's tokenizer (offline): the field
    guide's decoder family at a size a test can train."""
    from transformers import AutoTokenizer, Qwen2Model

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2Model(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


QWEN2_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "configs" / "qwen2-0.5b-students.yaml"


def test_the_qwen2_example_config_trains_with_gradient_checkpointing(run_dir, tiny_qwen2, tmp_path):
    """The documented real-scale recipe, as written, for one step: only the backbone (a tiny Qwen2), the sizes and
    the device (its bf16 needs --use_cpu on a CPU) differ. Its gradient_checkpointing: true used to stop Trainer
    before the first step."""
    import yaml

    from mycelium_run.cli import main

    recipe = yaml.safe_load(QWEN2_EXAMPLE.read_text())
    assert recipe["gradient_checkpointing"] is True and recipe["pooling"] == "last"
    models = tmp_path / "models"
    argv = [
        "train",
        "classifier",
        "--run_dir",
        str(run_dir),
        "--models_dir",
        str(models),
        "--config",
        str(QWEN2_EXAMPLE),
        "--output_dir",  # given, so kept (by default checkpoints are a work folder, removed when training ends)
        str(tmp_path / "checkpoints"),
    ]
    sizes = [
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "8",
        "--use_cpu",
    ]
    assert main([*argv, "--backbone", tiny_qwen2, *sizes, "--max_length", "64"]) == 0
    saved = AutoModelForSequenceClassification.from_pretrained(models / "classifier")
    assert saved.config.pooling == "last" and saved.config.backbone_config["model_type"] == "qwen2"
    assert saved.config.backbone_name == Path(tiny_qwen2).name  # a local backbone is recorded by name, not by path
    log = json.loads((models / "classifier" / "training_log.json").read_text())
    assert max(entry.get("step", 0) for entry in log) == 1
    # Trainer got the tokenizer (processing_class): its checkpoints can be loaded as they are
    assert list((tmp_path / "checkpoints").glob("checkpoint-*/tokenizer.json"))


def test_the_length_a_student_was_trained_on_is_what_the_solver_reads(run_dir, tiny_qwen2, tmp_path):
    """``--max_length`` is a model fact: the binder's config and the saved tokenizer keep it, and the solver reads
    the binder's (it used to read 256 tokens whatever the binder was trained on)."""
    from transformers import AutoModel, AutoTokenizer

    from mycelium_run.cli import main

    models = tmp_path / "models"
    argv = ["train", "binder", "--run_dir", str(run_dir), "--models_dir", str(models), "--backbone", tiny_qwen2]
    assert main([*argv, "--max_steps", "1", "--max_length", "48", "--use_cpu"]) == 0
    assert AutoModel.from_pretrained(models / "binder").config.max_input_tokens == 48
    assert AutoTokenizer.from_pretrained(models / "binder").model_max_length == 48


def test_training_keeps_the_options_it_is_given(run_dir, tiny_qwen2, tmp_path):
    """--eval_strategy / --save_strategy / --load_best_model_at_end are used as given (they used to be replaced)."""
    from mycelium_run.cli import main

    models = tmp_path / "models"
    argv = ["train", "classifier", "--run_dir", str(run_dir), "--models_dir", str(models), "--backbone", tiny_qwen2]
    given = ["--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "2"]
    assert main([*argv, *given, "--pooling", "last", "--max_length", "64"]) == 0
    log = json.loads((models / "classifier" / "training_log.json").read_text())
    evaluations = [entry for entry in log if "eval_loss" in entry]
    assert len(evaluations) == 1 and log[-1] is evaluations[0]  # no evaluation during training, only the final one
    assert "eval_accuracy" in json.loads((models / "classifier" / "metrics.json").read_text())  # the final one


def test_mycelium_train_stamps_what_it_trained_and_the_run_retrains_it_leaving_no_checkpoint(
    run_dir, tmp_path, caplog, capsys
):
    """`mycelium train` into a run's models folder writes a stamp that tells the truth (its own options, no run
    identity), keeps no checkpoint anywhere in the run, and prints no warning (no pinned memory without an
    accelerator, no PAD-token realignment, no early stopping after training); the next `mycelium run` sees a student
    it did not train and retrains it, keeping the others it trained."""
    import logging
    import shutil
    import warnings

    import transformers

    from mycelium_models.students import STUDENTS
    from mycelium_run.cli import main
    from mycelium_run.stage import StudentsConfig, train_students

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    weights = {kind: (run / "models" / kind / "model.safetensors").stat().st_mtime_ns for kind in STUDENTS}
    transformers.utils.logging.enable_propagation()  # its warnings reach caplog too
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            assert main(["train", "classifier", "--run_dir", str(run), "--num_train_epochs", "1"]) == 0
    finally:
        transformers.utils.logging.disable_propagation()
    assert [str(w.message) for w in caught] == [] and [r.getMessage() for r in caplog.records] == []
    printed = json.loads(capsys.readouterr().out)  # stdout is the metrics alone: no Trainer log dict mixed in
    assert printed == json.loads((run / "models" / "classifier" / "metrics.json").read_text())
    stamp = json.loads((run / "models" / "classifier" / "mycelium.json").read_text())
    marker = json.loads((run / ".mycelium" / "op_classes.json").read_text())
    assert stamp["identity"] is None and stamp["training_arguments"]["num_train_epochs"] == 1
    assert stamp["trained_on"]["fingerprint"] == marker["fingerprint"]
    assert not [p for p in run.rglob("*checkpoint*")]  # neither in models/ nor in the work folder
    assert (run / "models" / "classifier" / "model.safetensors").stat().st_mtime_ns != weights["classifier"]

    config = json.loads((run / "run_config.json").read_text())
    with caplog.at_level(logging.WARNING):
        train_students(run, StudentsConfig(**config["students"]), config["io_tags"]["student_tokenizer"])
    assert any("classifier" in r.getMessage() for r in caplog.records)  # the run says what it replaces
    retrained = {
        kind for kind in STUDENTS if (run / "models" / kind / "model.safetensors").stat().st_mtime_ns != weights[kind]
    }
    assert retrained == {"classifier"}
    assert json.loads((run / "models" / "classifier" / "mycelium.json").read_text())["identity"]
    assert not [p for p in run.rglob("*checkpoint*")]


def test_the_training_plot_puts_the_restored_checkpoint_at_its_own_epoch(models_dir):
    """The evaluations after training are logged at the last epoch; the plot draws them at the epoch of the
    checkpoint that was restored (they used to be drawn as a drop at the last epoch), and the validation curve
    holds only the evaluations made during training."""
    from mycelium_run.report import training_curves

    for kind in ("tagger", "classifier", "binder", "decoder"):
        history = json.loads((models_dir / kind / "training_log.json").read_text())
        curves = training_curves(history)
        during = [h for h in history[: next(k for k, h in enumerate(history) if "train_runtime" in h)]]
        assert curves["validation"] == [(h["epoch"], h["eval_loss"]) for h in during if "eval_loss" in h]
        final = next(h["validation_loss"] for h in history if "validation_loss" in h)
        epoch, loss = curves["best"]
        assert loss == final and dict(curves["validation"])[epoch] == pytest.approx(final, rel=1e-5), kind
        assert curves["test"][0] == epoch


def test_the_tagger_refuses_io_tags_of_another_tokenizer(run_dir, tiny_qwen2, tmp_path):
    from transformers import TrainingArguments

    from mycelium_models.train import StudentTrainingArguments, TokenizerMismatchError, train
    from mycelium_run.stage import StudentsConfig, training_defaults

    args = StudentTrainingArguments(run_dir=str(run_dir), backbone=tiny_qwen2, models_dir=str(tmp_path))
    training_args = TrainingArguments(output_dir=str(tmp_path), **training_defaults(StudentsConfig(), "tagger"))
    with pytest.raises(TokenizerMismatchError, match="io_tags was tokenized with 'all-minilm-l6-v2'") as error:
        train("tagger", args, training_args)
    assert tiny_qwen2 in str(error.value) and "--student_tokenizer" in str(error.value)
    assert not (tmp_path / "tagger").exists()


def test_run_writes_report_and_an_evaluation_whose_attribution_adds_up(run_dir):
    summary = json.loads((run_dir / "eval" / "eval.json").read_text())
    assert summary["split"] == "test" and summary["n"] == summary["n_scored"] > 0
    assert sum(summary["attribution"].values()) == summary["wrong"] == summary["n_scored"] - summary["correct"]
    predictions = [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == summary["n"]
    assert all((p["stage"] is None) == bool(p["correct"]) for p in predictions)
    report = (run_dir / "report" / "report.md").read_text()
    for needed in ("end-to-end accuracy", "Error attribution", "Oracle ladder", "op_status.png", "binder"):
        assert needed in report, needed
    # rung (a): the reference units, operations and binding through the solver's executor reproduce every gold
    ladder = summary["ladder"]
    rungs = ["a", "b", "c", "d", "decoder_reference_regions", "decoder_tagger_regions", "decoder_no_regions"]
    assert list(ladder) == rungs and ladder["a"]["n"] == summary["reference_validated"] > 0
    assert ladder["a"]["correct"] == ladder["a"]["n"]
    answered = "decoder_tagger_regions"  # the solver's own answers: the decoder with the tagger's regions
    assert ladder[answered]["correct"] == sum(1 for p in predictions if p["correct"] and p["ladder"][answered])
    assert [w["beams"] for w in summary["beam"]] == [1, 4, 8, 16]
    for png in ("attribution.png", "op_status.png", "training.png"):
        assert (run_dir / "report" / png).stat().st_size > 1000, png


def test_the_report_names_the_models_folder_as_code_started_where_the_run_was_opens_it(run_dir, monkeypatch):
    """From a folder above the run's parent (as `runs/demo` is from the repository's root) the report's
    from_pretrained path opens the models from there; from elsewhere it names them from the run folder's parent, as
    cards do, never by an absolute path."""
    import re

    from mycelium_run.report import write_run_report

    def suggested() -> str:
        text = write_run_report(run_dir).read_text()
        return re.search(r'MyceliumSolver\.from_pretrained\("([^"]+)"\)', text).group(1)

    monkeypatch.chdir(run_dir.parent.parent)
    path = suggested()
    assert path == f"{run_dir.parent.name}/{run_dir.name}/models" and (Path(path) / "tagger" / "config.json").is_file()
    monkeypatch.chdir(Path(__file__).parent)
    assert suggested() == f"{run_dir.name}/models"


def test_eval_cli_scores_unseen_problems_from_a_jsonl_file(models_dir, tmp_path, capsys):
    from mycelium_run.cli import main

    src = write_jsonl(
        tmp_path / "new.jsonl",
        [
            {"question": "Ann has 5 pens and buys 3 more. How many pens does she have?", "answer": "5+3=8\n#### 8"},
            {"problem": "A box holds 6 eggs. How many eggs are in 4 boxes?", "answer": "24"},
            {"problem": "No numbers here at all?", "answer": "1", "solution": "It is 1.\n#### 1"},
            {"problem": "Bad row with no answer"},
        ],
    )
    out = tmp_path / "eval"
    assert main(["eval", "--models", str(models_dir), "--source", str(src), "--out", str(out)]) == 0
    summary = json.loads((out / "eval.json").read_text())
    assert json.loads(capsys.readouterr().out)["n_scored"] == summary["n_scored"]  # stdout is the one JSON result
    assert summary["n"] == 4 and summary["n_scored"] == 3  # the row with no answer is kept, not scored
    assert sum(summary["attribution"].values()) == summary["wrong"]
    assert (out / "report.md").is_file() and (out / "attribution.png").is_file()
    assert main(["eval", "--models", str(tmp_path / "nothing"), "--source", str(src), "--out", str(out)]) == 2


def test_metrics_load_by_path_with_evaluate_offline():
    from mycelium_models.metrics import load_metric

    f1 = load_metric("io_span_f1").compute(predictions=[[0, 1, 1, 0]], references=[[-100, 1, 1, 0]])
    assert f1["f1"] == 1.0
    acc = load_metric("op_accuracy").compute(predictions=[0, 1, 1], references=[0, 1, 2])
    assert acc["accuracy"] == pytest.approx(2 / 3)
    e2e = load_metric("e2e_accuracy").compute(predictions=["8", "", "0.5"], references=["8", "3", "\\frac{1}{2}"])
    assert e2e["accuracy"] == pytest.approx(2 / 3) and e2e["answered"] == pytest.approx(2 / 3)


def test_loop_adds_validated_problems_and_versions_each_round(run_dir):
    from mycelium_run.loop import LoopArguments, run_loop

    result = run_loop(LoopArguments(run_dir=str(run_dir), max_rounds=1, pool_size=12, mop_up="reference"))
    assert [r["round"] for r in result["rounds"]] == [0, 1]
    round1 = result["rounds"][1]
    assert round1["added_self"] + round1["added_mop_up"] > 0  # the reference mop-up validates gsm_symbolic problems
    assert 0 <= round1["added_mop_up_tier3"] <= round1["added_mop_up"]  # read with the round's classifier, counted
    round_dir = run_dir / "loop" / "round-1"
    on_disk = {name: read_artifact(round_dir / name) for name in ("io_tags", "bindings")}  # never via a cache
    io_tags = on_disk["io_tags"]
    assert len(io_tags["train"]) == round1["io_tags_train"] > result["rounds"][0]["io_tags_train"]
    test_ids = {r["id"] for r in read_artifact(run_dir / "problems")["test"]}
    assert not test_ids & {r["id"] for r in io_tags["train"]}  # nothing from the test split ever trains a student
    assert (round_dir / "models" / "binder" / "model.safetensors").is_file()
    from huggingface_hub import ModelCard

    from mycelium_models.model_card import E2E_TASK_TYPE

    card = ModelCard.load(round_dir / "models" / "tagger" / "README.md")  # the round's own end-to-end accuracy
    e2e = [(r.metric_value, r.dataset_type) for r in card.data.eval_results if r.task_type == E2E_TASK_TYPE]
    assert e2e == [(json.loads((round_dir / "eval" / "eval.json").read_text())["accuracy"], "problems")]
    bindings = on_disk["bindings"]
    assert len(bindings["train"]) == round1["bindings_train"] > result["rounds"][0]["bindings_train"]
    from mycelium_datasets.arith import format_value
    from mycelium_datasets.dag import execute
    from mycelium_datasets.numbers import quantities

    for row in bindings["train"]:  # the added solutions carry bindings that execute to their answers
        value, _ = execute(row["ops"], row["answer_op"], quantities(row["problem"]), [])
        assert format_value(value) == row["executed_answer"]
    assert (run_dir / "loop" / "report.md").is_file()
    again = run_loop(LoopArguments(run_dir=str(run_dir), max_rounds=1, pool_size=12, mop_up="reference"))
    assert again["rounds"] == result["rounds"]  # a complete round is resumed, not redone
    assert {name: read_artifact(round_dir / name) for name in on_disk} == on_disk
