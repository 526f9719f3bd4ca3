"""The students' model cards: YAML the Hub reads (license, base model, datasets, ``model-index``) and a body rendered
from the package's model card template (``mycelium_models.templates``), with
``ModelCard.from_template``.

``model-index`` (huggingface_hub's ``EvalResult``) holds what a student was measured to do, each figure with the
dataset and split it was measured on:

| card | figures (the student's ``headline`` first) | dataset, split |
| --- | --- | --- |
| tagger | span F1, token accuracy, precision, recall | ``io_tags``, ``test`` |
| classifier | accuracy, macro-F1 | ``op_classes``, ``test`` |
| binder | operand binding accuracy, answer selection accuracy, pointer and problem accuracy | ``bindings``, ``test`` |
| every student, after the run's evaluation | the solver's end-to-end accuracy, no CoT | ``problems``, ``test`` |

A dataset is named by its artifact in a run folder (``io_tags``) and by its repo id once released
(:func:`point_at_repos`, called by ``mycelium release``). What ``Trainer.evaluate`` reports that is not a measurement
of the model (epoch, loss, runtime, samples and steps per second) goes to ``mycelium.training``, never to
``model-index``.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from mycelium_models.students import STUDENTS, get_student

# The card's usage block and results table; a release rewrites what is between these markers.
USE_BEGIN, USE_END = "<!-- mycelium:use -->", "<!-- /mycelium:use -->"
RESULTS_BEGIN, RESULTS_END = "<!-- mycelium:results -->", "<!-- /mycelium:results -->"
# What Trainer.evaluate reports beside the metrics (without its ``eval_`` prefix): figures of the training run.
TRAINING_FIGURES = ("epoch", "loss", "runtime", "samples_per_second", "steps_per_second", "model_preparation_time")
# The task of the end-to-end figure: the solver answers a math word problem (the answer alone, no CoT).
E2E_TASK_TYPE = "question-answering"
E2E_TASK_NAME = "Math word problems, answer only (no chain of thought)"
E2E_METRIC_NAME = "end-to-end accuracy (tagger + classifier + binder + executor, no CoT)"


def split_metrics(metrics: dict) -> tuple[dict[str, float], dict[str, float]]:
    """``Trainer.evaluate``'s dict as ``(measurements, training figures)``: the measurements keyed without the
    ``eval_`` prefix (``f1``, ``accuracy``...), the training figures as reported (``epoch``, ``eval_runtime``...)."""
    measured, training = {}, {}
    for key, value in sorted(metrics.items()):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = key.removeprefix("eval_")
        if name == key or name in TRAINING_FIGURES:
            training[key] = value
        else:
            measured[name] = value
    return measured, training


def student_results(kind: str, metrics: dict, dataset: str, split: str = "test") -> list[EvalResult]:
    """The student's measurements as ``EvalResult``s on ``dataset`` (an artifact name or a repo id) / ``split``,
    its ``headline`` metrics first, named by their headline labels."""
    student = get_student(kind)
    measured, _ = split_metrics(metrics)
    labels = dict(student.headline)
    order = [m for m in labels if m in measured] + [m for m in measured if m not in labels]
    return [
        EvalResult(
            task_type=student.pipeline_tag,
            task_name=f"Mycelium {kind}",
            dataset_type=dataset,
            dataset_name=f"Mycelium {dataset}",
            dataset_split=split,
            metric_type=metric,
            metric_value=measured[metric],
            metric_name=labels.get(metric, metric.replace("_", " ")),
        )
        for metric in order
    ]


def end_to_end_result(accuracy: float, split: str, dataset: str = "problems", source: str | None = None) -> EvalResult:
    """The solver's end-to-end accuracy on ``dataset`` / ``split`` (the run's problems, from ``source``)."""
    return EvalResult(
        task_type=E2E_TASK_TYPE,
        task_name=E2E_TASK_NAME,
        dataset_type=dataset,
        dataset_name=f"Mycelium {dataset}" + (f" ({source})" if source else ""),
        dataset_split=split,
        metric_type="accuracy",
        metric_value=accuracy,
        metric_name=E2E_METRIC_NAME,
    )


def results_block(results: list[EvalResult] | None) -> str:
    """The body's table of ``results`` (the card's ``model-index``), between the results markers."""
    lines = [RESULTS_BEGIN]
    if results:
        lines += ["| metric | value | dataset | split |", "| --- | --- | --- | --- |"]
        for r in results:
            value = f"{r.metric_value:.4f}" if isinstance(r.metric_value, float) else str(r.metric_value)
            lines.append(f"| {r.metric_name or r.metric_type} | {value} | `{r.dataset_type}` | {r.dataset_split} |")
    else:
        lines.append("No evaluation recorded (the training set had no `test` rows).")
    return "\n".join([*lines, RESULTS_END])


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` (markers included) replaced by ``block``."""
    if begin not in text or end not in text:
        return text
    head, rest = text.split(begin, 1)
    return head + block + rest.split(end, 1)[1]


def render_model_card(
    kind: str, *, backbone: str, metrics: dict, lineage: dict, run_folder: str, solver_path: str, version: str
) -> str:
    """The README.md of a student folder.

    ``backbone`` is the name it was trained from (embedded name, Hub id or folder); ``metrics`` what
    ``Trainer.evaluate`` returned on the training set's ``test`` split; ``lineage`` the training set's (``artifact``,
    ``version``, ``fingerprint``, ``rows``, ``provenance``); ``run_folder`` and ``solver_path`` how the card names
    the run folder and the models folder (never by a path of this machine); ``version`` the students' version."""
    from mycelium_datasets.card import code_version
    from mycelium_datasets.defaults import portable_backbone_name
    from mycelium_datasets.provenance import combine_licenses, lineage_licenses, model_identity, model_license_part
    from mycelium_models.templates import MODEL_CARD

    student = get_student(kind)
    identity = model_identity(backbone)
    base_model = identity.get("upstream") or identity.get("hub_id")
    # the backbone's terms and those of everything the training rows were made from
    licenses = [
        model_license_part("backbone (fine-tuned)", identity),
        *lineage_licenses(lineage.get("provenance") or {}),
    ]
    license_meta = combine_licenses(licenses)
    artifact = lineage.get("artifact") or student.artifact
    results = student_results(kind, metrics, artifact)
    _, training = split_metrics(metrics)
    data = ModelCardData(
        library_name="transformers",
        language=["en"],
        tags=["mycelium", "math-word-problems", kind],
        base_model=base_model,
        datasets=[artifact],
        pipeline_tag=student.pipeline_tag,
        model_name=f"mycelium-{kind}",
        eval_results=results or None,
        version=version,
        mycelium={
            "student": kind,
            "code_version": code_version(),
            "backbone": identity,
            "training_data": {k: v for k, v in lineage.items() if k != "provenance"},
            "lineage": lineage.get("provenance") or {},
            "training": training,
        },
        **license_meta,
    )
    use = f"""{USE_BEGIN}
```python
import mycelium_models  # registers the classes with the Auto classes
from mycelium_models.solver import MyceliumSolver

solver = MyceliumSolver.from_pretrained("{solver_path}")
print(solver.solve(["Tom has 3 apples and buys 4 more. How many apples does he have?"])[0]["answer"])
```
{USE_END}"""
    card = ModelCard.from_template(
        data,
        template_path=str(MODEL_CARD),
        kind=kind,
        task=student.task,
        backbone=portable_backbone_name(backbone),
        artifact=artifact,
        version=lineage.get("version"),
        fingerprint=lineage.get("fingerprint"),
        rows=lineage.get("rows"),
        run_folder=run_folder,
        results=results_block(results),
        license=license_meta["license"]
        if "license_name" not in license_meta
        else f"other ({license_meta['license_name']})",
        license_parts=[part.line() for part in licenses],
        use=use,
    )
    return str(card)


def problem_source(run_dir: str | Path) -> str | None:
    """The name of a run's problem source (``gsm_symbolic``, ``gsm8k``, a file's name), from its problems marker."""
    import json

    marker = Path(run_dir) / ".mycelium" / "problems.json"
    if not marker.is_file():
        return None
    return ((json.loads(marker.read_text()).get("provenance") or {}).get("source") or {}).get("name")


def add_end_to_end(models_dir: str | Path, accuracy: float, split: str, source: str | None = None) -> list[Path]:
    """Put the solver's end-to-end accuracy (measured on the run's ``problems`` / ``split``) into the card of each
    student in ``models_dir``, replacing an earlier one; returns the cards written."""
    written = []
    for kind in STUDENTS:
        path = Path(models_dir) / kind / "README.md"
        if not path.is_file():
            continue
        card = ModelCard.load(path)
        kept = [r for r in card.data.eval_results or [] if r.task_type != E2E_TASK_TYPE]
        card.data.eval_results = [*kept, end_to_end_result(accuracy, split, source=source)]
        card.data.model_name = card.data.model_name or f"mycelium-{kind}"
        card.text = replace_block(card.text, RESULTS_BEGIN, RESULTS_END, results_block(card.data.eval_results))
        card.save(path)
        written.append(path)
    return written


def point_at_repos(card: ModelCard, model_repo: str, dataset_repos: dict[str, str]) -> ModelCard:
    """For a release: the card's datasets (``datasets`` and each ``model-index`` entry) named by their released repo
    ids (``dataset_repos``: artifact name -> repo id) where known, and the model by ``model_repo``. A ``datasets``
    entry no released repo stands for is dropped (the Hub reads it as a dataset id); ``model-index`` keeps the
    artifact name, its ``dataset_name`` says what it is."""
    data = card.data
    data.datasets = [dataset_repos[d] for d in data.datasets or [] if d in dataset_repos] or None
    if data.eval_results:
        for result in data.eval_results:
            result.dataset_type = dataset_repos.get(result.dataset_type, result.dataset_type)
        data.model_name = model_repo
        card.text = replace_block(card.text, RESULTS_BEGIN, RESULTS_END, results_block(data.eval_results))
    return card
