"""The ``mycelium`` command's handlers: one per subcommand (the command table, the usage and the start-up rule are
in ``mycelium_cli``, the entry point, which imports this module only when a command runs).

One shape for every command: :data:`HANDLERS` maps it to its handler, which builds its parser, parses through
:func:`parse_options` (an unknown option is one line naming the nearest valid one, exit status 2) and raises what it
refuses; :func:`run_command` turns every refusal (:data:`USER_ERRORS`) into one line on stderr and exit status 2.
Options come from the config dataclasses (``HfArgumentParser``) wherever a command has them, so every option of the
Python API is a flag, with its help text. ``--config NAME|FILE.yaml`` sets defaults that explicit flags override.

    mycelium run --out DIR [--source NAME|FILE.jsonl] [--limit N] [--config NAME]
    mycelium build ARTIFACT --out DIR [options]
    mycelium show DIR --id ID --out PAGE.html
    mycelium train STUDENT --run_dir DIR           (tagger, classifier, binder, decoder)
    mycelium solve --models DIR/models|ORG/NAME [--revision vX.Y.Z] "PROBLEM TEXT"
    mycelium eval --models DIR/models|ORG/NAME --source NAME|FILE.jsonl --out EVALDIR
    mycelium loop --run_dir DIR
    mycelium verify DIR
    mycelium sources | mycelium artifacts
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from mycelium_cli import COMMANDS, main  # noqa: F401 - main: `python -m mycelium_run.cli`, as torchrun starts it
from mycelium_datasets.answers import shutdown_worker
from mycelium_datasets.builders import BUILDERS, UpstreamMissingError
from mycelium_datasets.capture import CaptureError
from mycelium_datasets.defaults import MissingComponentError
from mycelium_datasets.layout import RunFolder
from mycelium_datasets.pipeline import build
from mycelium_datasets.problems import valid_sources_text
from mycelium_datasets.run_folder import ArtifactDamagedError, RunFolderBusyError, RunLock
from mycelium_models.students import STUDENTS
from mycelium_run.job import load_preset, option_classes, preset_names, run, split_options
from mycelium_run.logs import LOG_LEVELS, check_log_level, configure_logging
from mycelium_run.release import ReleaseError

logger = logging.getLogger("mycelium")

# What a command refuses with one line on stderr and exit status 2: input a user can fix (a bad option or source, a
# missing or busy run folder, a damaged artifact under --no_rebuild, a model that cannot load, a refused release).
# The input errors (SourceError, ShowError, UnfitProblemsError, UnknownOptionError) are ValueErrors. Anything else
# is a bug, and keeps its traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    MissingComponentError,
    UpstreamMissingError,
    CaptureError,
    ArtifactDamagedError,
    RunFolderBusyError,
    ReleaseError,
)


@dataclass
class RunArguments:
    """Where the run goes and which named configuration it starts from."""

    out: str = field(metadata={"help": "Run folder: DIR/<artifact>/ is written for each artifact."})
    config: str = field(
        default="default", metadata={"help": f"Named config ({', '.join(preset_names())}) or FILE.yaml."}
    )
    force: bool = field(
        default=False, metadata={"help": "Rebuild even when an identical artifact exists (build only)."}
    )
    verify: bool = field(
        default=False,
        metadata={"help": "Check finished artifacts' files by sha256 before reusing them (sizes are always checked)."},
    )
    no_rebuild: bool = field(
        default=False,
        metadata={"help": "Stop with an error naming a damaged artifact instead of rebuilding it."},
    )
    no_wait: bool = field(
        default=False,
        metadata={"help": "Stop at once if another process is writing the run folder, instead of waiting for it."},
    )
    num_proc: int | None = field(
        default=None,
        metadata={
            "help": "Worker processes for the CPU-only stages ("
            + ", ".join(name for name, builder in BUILDERS.items() if builder.CPU_WORKERS)
            + "); the artifacts are the same bytes and fingerprints with any value (default: this process alone)."
        },
    )
    log_level: str = field(
        default="info",
        metadata={
            "help": f"{', '.join(LOG_LEVELS)}: what is printed on stderr, for this package and for datasets' and "
            "transformers' logs and progress bars (info: a line per artifact and student, our progress bars)."
        },
    )

    def __post_init__(self) -> None:
        self.log_level = check_log_level(self.log_level)
        if self.num_proc is not None and self.num_proc < 1:
            raise ValueError(f"--num_proc must be positive, got {self.num_proc}")


class UnknownOptionError(ValueError):
    """A command line with an option (or a positional argument) the command does not take."""


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser``, its errors (a missing option, a value of the wrong type) one line on stderr and exit status 2,
    instead of argparse's usage, which for ``TrainingArguments`` runs to a hundred lines before the error."""

    def error(message: str):
        parser.exit(2, f"mycelium: error: {parser.prog}: {message} (see {parser.prog} --help)\n")

    parser.error = error
    return parser


def unknown_options(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """A line naming the first ``--option`` of ``argv`` that ``parser`` does not take (as argparse does, a unique
    prefix of an option is that option) and the nearest option it does take (by ``difflib``'s similarity), so a
    typo reads as one: ``--num_trian_epochs`` -> ``--num_train_epochs``. None when every option is known."""
    valid = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    for arg in argv:
        if arg == "--":
            break
        flag = arg.split("=", 1)[0]
        if not flag.startswith("--") or flag in valid or any(option.startswith(flag) for option in valid):
            continue
        nearest = difflib.get_close_matches(flag, valid, n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else f" (see {parser.prog} --help)"
        return f"{parser.prog}: unknown option {flag}{hint}"
    return None


def parse_options(parser: argparse.ArgumentParser, argv: list[str]) -> tuple:
    """``argv`` parsed by any command's parser: an ``HfArgumentParser`` gives its dataclasses, a plain one a
    one-element tuple of its namespace. An option the parser does not take, or an argument left over, is an
    :class:`UnknownOptionError`: checked first, so a typo is named as such even when a required option is missing
    too. Argparse's own errors are one line (:func:`one_line_errors`). Every command parses through here."""
    one_line_errors(parser)
    problem = unknown_options(parser, argv)
    if problem:
        raise UnknownOptionError(problem)
    if isinstance(parser, HfArgumentParser):
        *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    else:
        namespace, remaining = parser.parse_known_args(argv)
        parsed = [namespace]
    if remaining:
        raise UnknownOptionError(f"{parser.prog}: unexpected argument {remaining[0]!r} (see {parser.prog} --help)")
    return tuple(parsed)


def _parser(prog: str, with_artifact: bool) -> HfArgumentParser:
    parser = HfArgumentParser((RunArguments, *option_classes()), prog=prog)
    if with_artifact:
        parser.add_argument("artifact", choices=list(BUILDERS), help="Artifact to build.")
    return parser


def _parse(prog: str, argv: list[str], with_artifact: bool):
    """Parse argv twice: once to find --config, then with the config's values as defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default="default")
    known, _ = pre.parse_known_args(argv)
    preset = load_preset(known.config)
    parser = _parser(prog, with_artifact)
    parser.set_defaults(**preset)
    parsed = parse_options(parser, argv)
    run_args = parsed[0]
    options = {}
    n = len(option_classes())
    for obj in parsed[1 : 1 + n]:
        options.update(vars(obj))
    artifact = parsed[1 + n].artifact if with_artifact else None
    return run_args, split_options(options), artifact


def _show(argv: list[str]) -> int:
    from mycelium_datasets.show import show

    parser = argparse.ArgumentParser(prog="mycelium show", description=COMMANDS["show"])
    parser.add_argument("run_dir", help="Run folder holding jsd_spans or iaf_maps.")
    parser.add_argument("--id", required=True, help="Problem id to show.")
    parser.add_argument(
        "--out",
        required=True,
        help="HTML page to write, or a folder (existing, or ending in /) to write ID.html in; the JSD plot is "
        "written beside it.",
    )
    (args,) = parse_options(parser, argv)
    page = show(args.run_dir, args.id, args.out)
    print(f"wrote {page} and {page.with_suffix('.jsd.png')}")
    return 0


def _training_yaml(path: str, parser: HfArgumentParser) -> dict:
    """Options for ``mycelium train`` from a YAML file (any field of StudentTrainingArguments / TrainingArguments)."""
    import yaml

    if not Path(path).is_file():
        raise ValueError(f"config file not found: {path}")
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must be a mapping of option: value")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config {path} has unknown options {unknown} (see mycelium train tagger --help)")
    return data


def _train(argv: list[str]) -> int:
    from transformers import TrainingArguments

    from mycelium_models.train import StudentTrainingArguments, checkpoints_dir, train, training_set
    from mycelium_run.stage import StudentsConfig, training_defaults

    usage = f"usage: mycelium train {'|'.join(STUDENTS)} --run_dir DIR [--config FILE.yaml] [TrainingArguments]"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in STUDENTS:
        raise ValueError(f"mycelium train: invalid choice {argv[0]!r} (choose from {', '.join(STUDENTS)})")
    kind = argv[0]
    parser = HfArgumentParser((StudentTrainingArguments, TrainingArguments), prog=f"mycelium train {kind}")
    # the same training arguments as the students of `mycelium run` (one definition: stage.training_defaults)
    parser.set_defaults(output_dir="", **training_defaults(StudentsConfig(), kind))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv[1:])
    if known.config:  # a YAML file of the same options; explicit flags override it
        parser.set_defaults(**_training_yaml(known.config, parser))
    args, training_args = parse_options(parser, rest)
    scratch = not training_args.output_dir  # checkpoints in the run's work folder, removed when training ends
    if scratch:
        training_args.output_dir = str(checkpoints_dir(args.run_dir, kind))
    # TrainingArguments' --log_level (passive unless given) sets what is printed, as for `mycelium run`
    configure_logging({"passive": "info", "critical": "error"}.get(training_args.log_level, training_args.log_level))
    training_set(kind, args.run_dir)  # before the lock: a refused command leaves no trace in DIR
    with RunLock(args.run_dir):  # training writes DIR/models: one writer per run folder
        metrics = train(kind, args, training_args, scratch_output_dir=scratch)
    print(json.dumps(metrics, indent=2))
    return 0


def _solve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mycelium solve", description=COMMANDS["solve"])
    parser.add_argument(
        "--models",
        required=True,
        help="Folder with tagger/, classifier/ and binder/ (e.g. DIR/models), or a released solver's Hub id ORG/NAME.",
    )
    parser.add_argument(
        "--revision", default=None, help="Revision of a Hub --models: a tag such as v1.0.0, a branch or a commit."
    )
    parser.add_argument("problems", nargs="+", help="Problem texts.")
    (args,) = parse_options(parser, argv)
    from mycelium_models.solver import MyceliumSolver

    solver = MyceliumSolver.from_pretrained(args.models, revision=args.revision)
    for trace in solver.solve(args.problems):
        print(
            f"answer: {trace['answer']}"
            + (f"   (failed at {trace['stage']}: {trace.get('reason')})" if trace["stage"] else "")
        )
        for k, op in enumerate(trace["ops"]):
            operands = ", ".join(
                f"{p['value'] if p['value'] is not None else '?'}"
                + {"quantity": "", "op": f" (op{p['index']})", "constant": " (constant)"}.get(p["kind"], "")
                for p in op["pointers"]
            )
            mark = "*" if k == trace["answer_op"] else " "
            print(f" {mark}op{k}: {op['op']}({operands}) = {op['result']}   <- {op['region']!r}")
    return 0


@dataclass
class EvalArguments:
    """What to evaluate, on which problems, into where."""

    models: str = field(
        metadata={"help": "Folder with tagger/, classifier/ and binder/ (e.g. DIR/models), or a solver's Hub id."}
    )
    out: str = field(metadata={"help": "Evaluation folder: eval.json, predictions.jsonl, report.md, attribution.png."})
    split: str = field(
        default="all",
        metadata={
            "help": "all: every problem of --source. train or test: that split of the run that trained the models "
            "(--run_dir, or the run folder holding --models), read from its problems artifact; --source and "
            "--limit then play no part."
        },
    )
    run_dir: str | None = field(
        default=None,
        metadata={
            "help": "A run folder whose cot_traces/op_pairs serve as references for attribution (by id), and whose "
            "split --split train|test names."
        },
    )
    eval_verify_timeout: float = field(default=5.0, metadata={"help": "Seconds per answer check."})
    revision: str | None = field(
        default=None, metadata={"help": "Revision of a Hub --models: a tag such as v1.0.0, a branch or a commit."}
    )


def models_run_dir(models: str, run_dir: str | None, split: str, source_given: bool) -> Path:
    """The run folder whose ``split`` ``mycelium eval --split`` means: ``run_dir`` when given, else the run folder
    that holds the models folder (``DIR/models`` -> ``DIR``). Anything else is refused: a split recomputed from
    eval's own options could hold problems the models were trained on."""
    if split not in ("train", "test"):
        raise ValueError(f"--split must be all, train or test, got {split!r}")
    candidate = Path(run_dir) if run_dir else Path(models).parent
    if not (candidate / "problems" / "README.md").is_file():
        raise ValueError(
            f"--split {split} means the {split} split of the run that trained the models, but "
            f"{run_dir or models} is not in a run folder with a problems artifact: pass --run_dir DIR (that run), "
            "or --split all to evaluate every problem of --source"
        )
    if source_given:
        raise ValueError(
            f"--split {split} evaluates the {split} split of the run {candidate} as it was made; --source plays no "
            "part there: drop it, or use --split all to evaluate every problem of --source"
        )
    return candidate


def _eval(argv: list[str]) -> int:
    from mycelium_datasets.problems import ProblemsConfig, build_problems
    from mycelium_models.evaluation import evaluate_students, references_from_run, scoring_rows, write_eval
    from mycelium_models.solver import MyceliumSolver

    parser = HfArgumentParser((EvalArguments, ProblemsConfig), prog="mycelium eval", description=COMMANDS["eval"])
    configure_logging("info")
    args, problems_config = parse_options(parser, argv)
    if args.split not in ("all", "train", "test"):
        raise ValueError(f"--split must be all, train or test, got {args.split!r}")
    if args.split != "all":
        args.run_dir = str(
            models_run_dir(args.models, args.run_dir, args.split, any(a.split("=")[0] == "--source" for a in argv))
        )
    solver = MyceliumSolver.from_pretrained(args.models, revision=args.revision)
    if args.split == "all":
        problems = build_problems(problems_config)
        source = problems_config.source
    else:  # the models' own split, exactly as their run made it
        import datasets

        problems = datasets.load_dataset(str(RunFolder(args.run_dir).artifact("problems")))
        source = f"{args.run_dir}/problems"
    rows = scoring_rows(r for split, data in problems.items() if args.split in ("all", split) for r in data)
    if not rows:
        raise ValueError(f"no problems in split {args.split!r} of {source}")
    references = references_from_run(args.run_dir) if args.run_dir else None
    summary, predictions = evaluate_students(solver, rows, references, verify_timeout=args.eval_verify_timeout)
    summary.update({"source": source, "split": args.split, "models": args.models})
    path = write_eval(args.out, summary, predictions, title=f"Students on {source} ({args.split})")
    print(
        json.dumps({k: summary[k] for k in ("n", "n_scored", "accuracy", "attribution", "teacher_accuracy")}, indent=2)
    )
    logger.info("wrote %s and %s", path, Path(args.out) / "report.md")  # stdout is the JSON above alone
    return 0


def _verify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mycelium verify", description=COMMANDS["verify"])
    parser.add_argument("run_dir", help="Run folder to check.")
    (args,) = parse_options(parser, argv)
    from mycelium_datasets.pipeline import verify_folder

    if not RunFolder(args.run_dir).is_run_folder():
        raise FileNotFoundError(f"{args.run_dir} is not a run folder (no .mycelium/ in it)")
    report = verify_folder(args.run_dir)
    for name, problem in report.items():
        print(f"{name:<15} {problem or 'ok'}")
    if all(problem == "not built" for problem in report.values()):
        print(f"mycelium: error: {args.run_dir} holds no artifact: there is nothing to verify", file=sys.stderr)
        return 1
    damaged = [name for name, problem in report.items() if problem and problem != "not built"]
    if damaged:
        print(
            f"{len(damaged)} damaged ({', '.join(damaged)}): `mycelium run --out {args.run_dir}` rebuilds them "
            "(add --verify when a file may be altered without changing its size)",
            file=sys.stderr,
        )
        return 1
    return 0


def _release(argv: list[str]) -> int:
    from mycelium_run.release import describe, prepare, push

    parser = argparse.ArgumentParser(prog="mycelium release", description=COMMANDS["release"])
    parser.add_argument("dir", help="Artifact folder, run folder, models folder or model folder.")
    parser.add_argument("--repo", required=True, help="ORG/NAME (a run folder gives ORG/NAME-<artifact> repos).")
    parser.add_argument("--push", action="store_true", help="Upload and tag (default: a dry run that only lists).")
    parser.add_argument("--revision", default=None, help="Tag to create (default: v<version> from the card).")
    parser.add_argument("--private", action="store_true", help="Create new repos as private.")
    (args,) = parse_options(parser, argv)
    releases = []
    try:
        releases = prepare(args.dir, args.repo, args.revision)
        print(describe(releases))
        if not args.push:
            print("dry run: nothing uploaded (add --push to upload and tag)")
            return 0
        push(releases, private=args.private)
    finally:
        if releases:
            shutil.rmtree(releases[0].stage_dir.parent, ignore_errors=True)
    return 0


def _loop(argv: list[str]) -> int:
    from mycelium_run.loop import LoopArguments, check_run_folder, run_loop

    parser = HfArgumentParser(LoopArguments, prog="mycelium loop", description=COMMANDS["loop"])
    configure_logging("info")
    (args,) = parse_options(parser, argv)
    check_run_folder(args.run_dir)  # before the lock: a refused command leaves no trace in DIR
    with RunLock(args.run_dir):  # the loop writes DIR/loop: one writer per run folder
        result = run_loop(args)
    for r in result["rounds"]:
        print(
            f"round {r['round']}: accuracy {r['accuracy']:.3f} (+{r['added_self']} self, +{r['added_mop_up']} mop-up)"
        )
    print(f"stopped: {result['stop_reason']}; report: {RunFolder(args.run_dir).root / 'loop' / 'report.md'}")
    return 0


def _run_or_build(command: str, argv: list[str]) -> int:
    run_args, configs, artifact = _parse(f"mycelium {command}", argv, with_artifact=command == "build")
    configure_logging(run_args.log_level)
    rebuild, wait = not run_args.no_rebuild, not run_args.no_wait
    if command == "run":
        summary = run(
            run_args.out, configs, verify=run_args.verify, rebuild=rebuild, wait=wait, num_proc=run_args.num_proc
        )
        print(json.dumps(summary, indent=2))
        return 0
    dataset = build(
        run_args.out,
        artifact,
        configs,
        force=run_args.force,
        verify=run_args.verify,
        rebuild=rebuild,
        wait=wait,
        num_proc=run_args.num_proc,
    )
    if dataset is not None:
        print(
            f"{artifact}: " + ", ".join(f"{s}={len(d)}" for s, d in dataset.items()) + f" -> {run_args.out}/{artifact}"
        )
    return 0


def _listing(command: str, lines: Callable[[], str]) -> Callable[[list[str]], int]:
    def handler(argv: list[str]) -> int:
        if argv:
            raise UnknownOptionError(f"mycelium {command} takes no arguments, got {argv[0]!r}")
        print(lines())
        return 0

    return handler


# The handler of each command of mycelium_cli.COMMANDS: it takes the command's arguments, parses them with
# parse_options and returns the exit status; what it refuses, it raises (one of USER_ERRORS).
HANDLERS: dict[str, Callable[[list[str]], int]] = {
    "run": functools.partial(_run_or_build, "run"),
    "build": functools.partial(_run_or_build, "build"),
    "show": _show,
    "train": _train,
    "solve": _solve,
    "eval": _eval,
    "loop": _loop,
    "verify": _verify,
    "release": _release,
    "sources": _listing("sources", valid_sources_text),
    "artifacts": _listing("artifacts", lambda: "\n".join(BUILDERS)),
}


def run_command(command: str, rest: list[str]) -> int:
    """Run one of :data:`mycelium_cli.COMMANDS` on its arguments ``rest``; returns the exit status: 0, 1 for a
    damaged run folder (``verify``), 2 for a refused command (one line on stderr)."""
    try:
        return HANDLERS[command](rest)
    except USER_ERRORS as exc:
        print(f"mycelium: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown_worker()


if __name__ == "__main__":
    sys.exit(main())
