"""The pipeline: a plain, visible sequence of builders over one run folder.

Each builder skips itself when an identical artifact (same fingerprint) is already complete, and long stages resume
from their finished parts, so rerunning the same command after an interruption finishes the job without losing or
duplicating rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from importlib import resources
from pathlib import Path

import yaml

from mycelium_datasets.builders import BUILDERS, get_builder
from mycelium_datasets.clause_regions import ClauseRegionsConfig
from mycelium_datasets.cot_traces import CotTracesConfig
from mycelium_datasets.iaf_maps import IafMapsConfig
from mycelium_datasets.jsd_spans import JsdSpansConfig
from mycelium_datasets.op_pairs import OpPairsConfig
from mycelium_datasets.problems import ProblemsConfig
from mycelium_datasets.runner import process_info
from mycelium_datasets.student_sets import StudentSetsConfig
from mycelium_models.stage import StudentsConfig

logger = logging.getLogger(__name__)

# Which config class configures which artifact.
CONFIG_CLASSES = {
    "problems": ProblemsConfig,
    "cot_traces": CotTracesConfig,
    "jsd_spans": JsdSpansConfig,
    "iaf_maps": IafMapsConfig,
    "clause_regions": ClauseRegionsConfig,
    "op_pairs": OpPairsConfig,
    "io_tags": StudentSetsConfig,
    "students": StudentsConfig,
}


def preset_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")]
        for p in resources.files("mycelium_datasets.configs").iterdir()
        if p.name.endswith(".yaml")
    )


def load_preset(name_or_path: str) -> dict:
    """A named configuration shipped with the package (``default``, ``tiny``, ``teacher``) or a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ValueError(f"config file not found: {name_or_path}")
        text = path.read_text()
    else:
        if name_or_path not in preset_names():
            raise ValueError(
                f"unknown config {name_or_path!r}; valid choices: {', '.join(preset_names())} or a FILE.yaml"
            )
        text = resources.files("mycelium_datasets.configs").joinpath(f"{name_or_path}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {name_or_path!r} must be a mapping of option: value")
    known = {f.name for cls in CONFIG_CLASSES.values() for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config {name_or_path!r} has unknown options {unknown}; valid options: {sorted(known)}")
    return data


def split_options(options: dict) -> dict[str, object]:
    """Build each artifact's config from one flat mapping of options (unknown keys are an error upstream)."""
    configs = {}
    for artifact, cls in CONFIG_CLASSES.items():
        names = {f.name for f in dataclasses.fields(cls)}
        configs[artifact] = cls(**{k: v for k, v in options.items() if k in names})
    configs["op_classes"] = configs["io_tags"]  # both student sets share one config
    return configs


def build(out_dir: str | Path, artifact: str, configs: dict[str, object], force: bool = False):
    """Build ``artifact``; upstream artifacts already in ``out_dir`` are used as they are, missing ones are built
    first with the given configs (in pipeline order)."""
    get_builder(artifact)
    # Under a distributed launch every process must see the same markers before deciding what to build.
    process_info().barrier()
    order = list(BUILDERS)
    for name in order[: order.index(artifact)]:
        upstream = BUILDERS[name](out_dir, configs[name])
        if upstream.read_marker() is None:
            logger.info("%s needs %s, which is missing in %s: building it first", artifact, name, out_dir)
            upstream.build()
    return BUILDERS[artifact](out_dir, configs[artifact]).build(force=force)


def run(out_dir: str | Path, configs: dict[str, object]) -> dict:
    """The main job, end to end into ``out_dir``: every artifact, then (unless ``--no_students``) both students
    trained on the training split, evaluated alone on the unseen test split, and ``DIR/report/``. Returns a
    summary."""
    from mycelium_datasets.report import write_run_report
    from mycelium_models.stage import NoTrainingDataError, evaluate_run, train_students

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    (out_dir / "run_config.json").write_text(
        json.dumps({k: dataclasses.asdict(v) for k, v in configs.items()}, indent=2, sort_keys=True)
    )
    summary: dict = {}
    seconds: dict = {}
    process_info().barrier()
    for name in BUILDERS:
        t = time.time()
        dataset = BUILDERS[name](out_dir, configs[name]).build()
        seconds[name] = round(time.time() - t, 1)
        if dataset is not None:
            summary[name] = {split: len(d) for split, d in dataset.items()}
    students = configs["students"]
    if students.students:
        t = time.time()
        try:
            metrics = train_students(out_dir, students, configs["io_tags"].student_tokenizer)
        except NoTrainingDataError as exc:
            logger.warning("students not trained: %s", exc)
            summary["students"] = {"skipped": str(exc)}
            metrics = None
        seconds["students"] = round(time.time() - t, 1)
        if metrics is not None and process_info().is_main:
            t = time.time()
            result = evaluate_run(out_dir, "test", verify_timeout=configs["op_pairs"].op_verify_timeout)
            seconds["eval"] = round(time.time() - t, 1)
            summary["students"] = {
                "tagger_f1": metrics["tagger"].get("eval_f1"),
                "classifier_accuracy": metrics["classifier"].get("eval_accuracy"),
                "e2e_accuracy_test": result["accuracy"],
                "n_test": result["n_scored"],
                "attribution": {k: v for k, v in result["attribution"].items() if v},
            }
    seconds["total"] = round(time.time() - started, 1)
    if process_info().is_main:
        summary["report"] = str(write_run_report(out_dir, seconds))
    summary["seconds"] = seconds
    return summary
