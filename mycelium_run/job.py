"""The end-to-end job (``mycelium run``): every artifact, then the students trained, evaluated alone on the unseen
test split, and the run's report; with the named configurations (presets) that configure it.

A run is configured by one flat set of options, each the field of one config dataclass: every artifact's config
(``mycelium_datasets.builders.BUILDERS``) and the students' (:class:`~mycelium_run.stage.StudentsConfig`).
``--config NAME|FILE.yaml`` gives defaults (``mycelium_run/configs/*.yaml``) that explicit flags override.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import time
from importlib import resources
from pathlib import Path

import datasets
import yaml

from mycelium_datasets.builders import config_classes, load_artifact
from mycelium_datasets.layout import RunFolder
from mycelium_datasets.pipeline import build, build_artifacts
from mycelium_datasets.run_folder import RunLock
from mycelium_datasets.runner import process_info
from mycelium_run.stage import StudentsConfig

logger = logging.getLogger(__name__)

# A reference-CoT run is refused when fewer than this share of its usable training problems have a solution: the
# students would learn from a minority of the problems given, which is never what was meant.
MIN_REFERENCE_SHARE = 0.5


class UnfitProblemsError(ValueError):
    """The run's ``problems`` cannot train and evaluate the students as configured; raised right after ``problems``
    is built, before any other stage runs."""


def run_config_classes() -> dict[str, type]:
    """The config class of each part of a run: each artifact's (the student sets share one), then the students'."""
    return {**config_classes(), "students": StudentsConfig}


def write_run_configs(out_dir: str | Path, configs: dict[str, object]) -> Path:
    """``DIR/run_config.json``: each part's config (as :func:`split_options` made them), read back by
    :func:`read_run_configs`."""
    path = RunFolder(out_dir).run_config
    path.write_text(json.dumps({k: dataclasses.asdict(v) for k, v in configs.items()}, indent=2, sort_keys=True))
    return path


def read_run_configs(out_dir: str | Path) -> dict[str, object]:
    """The configs a run was given, rebuilt from its ``run_config.json`` by the classes that split them
    (:func:`run_config_classes`): ``configs["op_pairs"].op_spacy_pipeline``, not string keys. A field this version
    no longer has is left out with a warning; a part the file lacks gets its defaults."""
    recorded = RunFolder(out_dir).read_run_config()
    configs = {}
    for part, cls in run_config_classes().items():
        names = {f.name for f in dataclasses.fields(cls)}
        values = recorded.get(part, {})
        if unknown := sorted(set(values) - names):
            logger.warning("%s: %s in its run_config.json are not %s options here; ignored", out_dir, unknown, part)
        configs[part] = cls(**{k: v for k, v in values.items() if k in names})
    return configs


def option_classes() -> list[type]:
    """The distinct config classes, in pipeline order: their fields are the run's options (``--help``)."""
    return list(dict.fromkeys(run_config_classes().values()))


def preset_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")] for p in resources.files("mycelium_run.configs").iterdir() if p.name.endswith(".yaml")
    )


def load_preset(name_or_path: str) -> dict:
    """A named configuration shipped with the package (``default``, ``tiny``, ``teacher``, ``gsm8k``, ``mwp``) or a
    YAML file."""
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
        text = resources.files("mycelium_run.configs").joinpath(f"{name_or_path}.yaml").read_text()
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


def _statuses(statuses: list[str]) -> str:
    return ", ".join(f"{status} ×{n}" for status, n in collections.Counter(statuses).most_common())


def check_problems(problems: datasets.DatasetDict, configs: dict[str, object]) -> None:
    """Refuse a run whose students could not be trained or evaluated on ``problems`` (checked right after the
    ``problems`` artifact is built, so a run never trains for a minute and then fails): no usable training problem;
    no ``test`` split, or none of its rows usable (the run evaluates the students on it); with ``--cot_source
    reference``, fewer than :data:`MIN_REFERENCE_SHARE` of the usable training problems with a reference CoT (a
    ``solution``). Raises :class:`UnfitProblemsError`, one line naming every problem and the flag that fixes it.
    A reference run that misses only a few CoTs goes on, with a warning naming how many. Nothing is checked with
    ``--no_students`` (the artifacts keep every row with its status)."""
    if not configs["students"].students:
        return
    source = configs["problems"].source
    found = []
    train = problems["train"]
    usable = [solution for status, solution in zip(train["status"], train["solution"]) if status == "ok"]
    if not usable:
        found.append(
            f"none of its {len(train)} training problems is usable ({_statuses(train['status'])}; each row's "
            "status_reason in the problems artifact says why): fix the source"
        )
    test = problems.get("test")
    if test is None:
        found.append(
            f"it has no 'test' split, which the students are evaluated on (--test_fraction "
            f"{configs['problems'].test_fraction} put none of {len(train)} problems there): raise --test_fraction "
            "or give more problems"
        )
    elif not any(status == "ok" for status in test["status"]):
        found.append(
            f"none of its {len(test)} test problems is usable ({_statuses(test['status'])}), so nothing could be "
            "scored: fix the source or raise --test_fraction"
        )
    if configs["cot_traces"].cot_source == "reference" and usable:
        missing = sum(1 for solution in usable if not (solution or "").strip())
        if missing > (1 - MIN_REFERENCE_SHARE) * len(usable):
            found.append(
                f"{missing} of its {len(usable)} usable training problems have no reference CoT (no 'solution'), "
                "and --cot_source reference trains the students on those CoTs: pass --cot_source teacher to have "
                "the teacher write them, or give problems with solutions"
            )
        elif missing:
            logger.warning(
                "%d of %d usable training problems from %s have no reference CoT (no 'solution'): the students "
                "learn from the others (--cot_source teacher writes them)",
                missing,
                len(usable),
                source,
            )
    if found:
        raise UnfitProblemsError(
            f"the students cannot be trained and evaluated on the problems from {source}: {'; '.join(found)} "
            "(or pass --no_students to build the artifacts alone)"
        )


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
    summary. Problems the students cannot be trained or evaluated on are refused right after ``problems`` is built
    (:func:`check_problems`). Holds the run folder's lock throughout (``wait=False``: fail at once if another
    process writes there); ``verify`` / ``rebuild`` / ``num_proc`` as in
    :func:`~mycelium_datasets.pipeline.build_artifacts`."""
    with RunLock(out_dir, wait=wait):
        return _run(Path(out_dir), configs, verify, rebuild, num_proc)


def _run(out_dir: Path, configs: dict[str, object], verify: bool, rebuild: bool, num_proc: int | None) -> dict:
    from mycelium_run.report import write_run_report
    from mycelium_run.stage import NoTrainingDataError, evaluate_run, train_students

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    write_run_configs(out_dir, configs)
    # problems first: a run it cannot serve is refused before any other stage runs (every process reads the same
    # files, so all of them refuse together)
    t = time.time()
    build(out_dir, "problems", configs, verify=verify, rebuild=rebuild, num_proc=num_proc)
    check_problems(load_artifact(out_dir / "problems"), configs)
    problems_seconds = time.time() - t
    summary, seconds = build_artifacts(out_dir, configs, verify=verify, rebuild=rebuild, num_proc=num_proc)
    seconds["problems"] = round(seconds["problems"] + problems_seconds, 1)
    students = configs["students"]
    if students.students:
        t = time.time()
        try:
            metrics = train_students(
                out_dir, students, configs["io_tags"].student_tokenizer, configs["io_tags"].max_length
            )
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
