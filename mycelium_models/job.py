"""The end-to-end job (``mycelium run``): every artifact, then the students trained, evaluated alone on the unseen
test split, and the run's report; with the named configurations (presets) that configure it.

A run is configured by one flat set of options, each the field of one config dataclass: every artifact's config
(``mycelium_datasets.builders.BUILDERS``) and the students' (:class:`~mycelium_models.stage.StudentsConfig`).
``--config NAME|FILE.yaml`` gives defaults (``mycelium_models/configs/*.yaml``) that explicit flags override.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from importlib import resources
from pathlib import Path

import yaml

from mycelium_datasets.builders import config_classes
from mycelium_datasets.pipeline import build_artifacts
from mycelium_datasets.run_folder import RunLock
from mycelium_datasets.runner import process_info
from mycelium_models.stage import StudentsConfig

logger = logging.getLogger(__name__)


def run_config_classes() -> dict[str, type]:
    """The config class of each part of a run: each artifact's (the student sets share one), then the students'."""
    return {**config_classes(), "students": StudentsConfig}


def option_classes() -> list[type]:
    """The distinct config classes, in pipeline order: their fields are the run's options (``--help``)."""
    return list(dict.fromkeys(run_config_classes().values()))


def preset_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")]
        for p in resources.files("mycelium_models.configs").iterdir()
        if p.name.endswith(".yaml")
    )


def load_preset(name_or_path: str) -> dict:
    """A named configuration shipped with the package (``default``, ``tiny``, ``teacher``, ``gsm8k``, ``mwp``) or a YAML
    file."""
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
        text = resources.files("mycelium_models.configs").joinpath(f"{name_or_path}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {name_or_path!r} must be a mapping of option: value")
    if isinstance(data.get("source"), list):  # a YAML list of sources is a mix
        data["source"] = ",".join(str(name) for name in data["source"])
    known = {f.name for cls in option_classes() for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config {name_or_path!r} has unknown options {unknown}; valid options: {sorted(known)}")
    return data


def split_options(options: dict) -> dict[str, object]:
    """Each part's config (keyed by artifact name, and ``students``) from one flat mapping of options (unknown keys
    are an error upstream); artifacts that share a config class share one instance."""
    instances = {}
    for cls in option_classes():
        names = {f.name for f in dataclasses.fields(cls)}
        instances[cls] = cls(**{k: v for k, v in options.items() if k in names})
    return {part: instances[cls] for part, cls in run_config_classes().items()}


def run(
    out_dir: str | Path,
    configs: dict[str, object],
    verify: bool = False,
    rebuild: bool = True,
    wait: bool = True,
    num_proc: int | None = None,
) -> dict:
    """The main job, end to end into ``out_dir``: every artifact, then (unless ``--no_students``) the students
    trained on the training split, evaluated alone on the unseen test split, and ``DIR/report/``. Returns a
    summary. Holds the run folder's lock throughout (``wait=False``: fail at once if another process writes there);
    ``verify`` / ``rebuild`` / ``num_proc`` as in :func:`~mycelium_datasets.pipeline.build_artifacts`."""
    with RunLock(out_dir, wait=wait):
        return _run(Path(out_dir), configs, verify, rebuild, num_proc)


def _run(out_dir: Path, configs: dict[str, object], verify: bool, rebuild: bool, num_proc: int | None) -> dict:
    from mycelium_models.report import write_run_report
    from mycelium_models.stage import NoTrainingDataError, evaluate_run, train_students

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    (out_dir / "run_config.json").write_text(
        json.dumps({k: dataclasses.asdict(v) for k, v in configs.items()}, indent=2, sort_keys=True)
    )
    summary, seconds = build_artifacts(out_dir, configs, verify=verify, rebuild=rebuild, num_proc=num_proc)
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
                "binder_op_accuracy": metrics["binder"].get("eval_op_accuracy"),
                "decoder_step_accuracy": metrics["decoder"].get("eval_step_accuracy"),
                "e2e_accuracy_test": result["accuracy"],
                "ladder": {rung: f"{r['correct']}/{r['n']}" for rung, r in result["ladder"].items()},
                "n_test": result["n_scored"],
                "attribution": {k: v for k, v in result["attribution"].items() if v},
            }
    seconds["total"] = round(time.time() - started, 1)
    if process_info().is_main:
        summary["report"] = str(write_run_report(out_dir, seconds))
    summary["seconds"] = seconds
    return summary
