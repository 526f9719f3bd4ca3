"""``mycelium loop``: the self-improving loop on a finished run folder.

Round 0 is the run itself (``DIR/models``, ``DIR/eval``). Each later round:

1. the current students solve a **pool** of training-side problems they have not been trained on (for a
   ``gsm_symbolic`` run: freshly generated problems from the *training* templates only, never a test template;
   for other sources: the run's training problems whose CoT did not validate);
2. every pool problem the students answer correctly — their operation DAG executed to the gold answer, which is the
   same verifier that admits the teacher's traces — becomes new training rows for every student, made by the
   student sets' own transforms from the solved DAG: its units as IO tags, each unit's operation sequence as a
   classifier example, and its binding (the students' own operands as pointers);
3. where configured (``--mop_up reference|teacher``), failures are mopped up: the problem's own solution, or a CoT
   the teacher writes now (the ``cot_traces`` stage itself), is parsed, and added when its DAG executes to the gold
   answer; a step no parser reads is read with the current operation classifier (parse tier 3,
   :func:`~mycelium_datasets.op_graph.validate_trace`; ``--parse_tier3 false`` turns it off), so each round's
   students read more of the CoTs than the last round's;
4. every student is retrained on the run's sets plus everything added so far, and evaluated on the run's unseen
   test split exactly as in ``mycelium run``.

Each round's training sets are versioned artifacts (``DIR/loop/round-N/io_tags``, ``op_classes``, ``bindings``:
Parquet + card with the round, fingerprint and lineage), with its models and evaluation beside them. The loop stops
when accuracy improves by less than ``--min_gain`` (1 point), when nothing new was added (that round trains
nothing: its sets would be the last round's), or after ``--max_rounds``. A round is complete when ``round.json``
is written (last); rerunning resumes after the last complete round.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.fingerprint import Hasher

from mycelium_datasets.layout import RunFolder
from mycelium_run.job import read_run_configs
from mycelium_run.stage import StudentsConfig, student_arguments

logger = logging.getLogger(__name__)


@dataclass
class LoopArguments:
    run_dir: str = field(metadata={"help": "A finished `mycelium run` folder (artifacts, models, eval)."})
    max_rounds: int = field(default=3, metadata={"help": "Most rounds after round 0."})
    min_gain: float = field(default=0.01, metadata={"help": "Stop when test accuracy improves by less than this."})
    pool_size: int = field(
        default=400, metadata={"help": "gsm_symbolic runs: problems generated per round for the pool."}
    )
    pool_seed: int = field(
        default=1000, metadata={"help": "gsm_symbolic runs: seed of round 1's pool (+1 per round)."}
    )
    mop_up: str = field(
        default="none",
        metadata={"help": "Mop-up of pool failures: none, reference (the problem's own solution) or teacher."},
    )
    mop_up_teacher: str | None = field(
        default=None, metadata={"help": "Teacher for --mop_up teacher (default: the run's first teacher)."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Teacher mop-up: tokens per CoT."})
    parse_tier3: bool = field(
        default=True,
        metadata={"help": "Mop-up: read CoT steps the parsers miss with the current operation classifier (tier 3)."},
    )


# ---------------------------------------------------------------------------------------------------------------
# Rows from solved problems: the student sets' own transforms
# ---------------------------------------------------------------------------------------------------------------


def solved_row(problem: dict, ops: list[dict]) -> dict:
    """An ``op_pairs``-shaped row (validated) for a problem whose operations and their regions are known, so that
    :func:`~mycelium_datasets.student_sets.make_io_tags` and ``make_op_classes`` make its training rows."""
    return {"id": problem["id"], "problem": problem["problem"], "ops": ops, "validated": True}


def trace_ops(problem: str, trace: dict) -> list[dict]:
    """The solver's operations as ``op_pairs`` ops (operation, unit as region, operands with their provenance), in
    dependency order with the answer operation last, as the ``op_pairs`` artifact writes a validated DAG."""
    from mycelium_datasets.dag import dependency_order

    ops = trace["ops"]
    order = dependency_order([{"op": op["op"], "operands": op["pointers"]} for op in ops])
    answer = trace["answer_op"]
    order = [k for k in order if k != answer] + [answer]
    position = {old: new for new, old in enumerate(order)}
    out = []
    for old in order:
        op = ops[old]
        operands = []
        for p in op["pointers"]:
            source = {"quantity": "problem", "op": "op", "constant": "constant"}[p["kind"]]
            operands.append(
                {
                    "value": p["value"],
                    "source": source,
                    "char_start": p["char_start"],
                    "char_end": p["char_end"],
                    "op_index": position[p["index"]] if source == "op" else -1,
                }
            )
        region = {"char_start": op["char_start"], "char_end": op["char_end"], "text": op["region"]}
        out.append(
            {"op": op["op"], "operands": operands, "result": op["result"], "written_result": "", "region": region}
        )
    return out


def student_rows(rows: list[dict], student_tokenizer: str, max_length: int, constants: list[str]) -> dict[str, list]:
    """Each student set's rows for solved problems (``op_pairs``-shaped rows), made by the artifacts' own
    transforms: ``io_tags``, ``op_classes`` and ``bindings`` (with the run's constant vocabulary; a problem its
    binding cannot hold gives no binding row)."""
    from mycelium_datasets.bindings import FEATURES as BINDING_FEATURES
    from mycelium_datasets.bindings import make_bindings
    from mycelium_datasets.student_sets import IO_FEATURES, OP_FEATURES, make_io_tags, make_op_classes

    if not rows:
        return {"io_tags": [], "op_classes": [], "bindings": []}
    batch = {key: [row[key] for row in rows] for key in ("id", "problem", "ops", "validated")}
    batch["executed_answer"] = [None] * len(rows)
    made = {
        "io_tags": (make_io_tags(batch, student_tokenizer=student_tokenizer, max_length=max_length), IO_FEATURES),
        "op_classes": (make_op_classes(batch), OP_FEATURES),
        "bindings": (make_bindings(batch, constants=constants), BINDING_FEATURES),
    }
    out = {}
    for name, (columns, features) in made.items():
        n = len(columns["id"])
        out[name] = [
            {key: columns[key][i] for key in features} for i in range(n) if not columns.get("bind_error", [""] * n)[i]
        ]
    return out


# ---------------------------------------------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------------------------------------------


def build_pool(run_dir: Path, configs: dict, args: LoopArguments, round_index: int, seen: set[str]) -> list[dict]:
    """Training-side problems for round ``round_index`` that no student has been trained on (``problems`` rows)."""
    from mycelium_datasets.problems import ProblemsConfig, build_problems

    run_problems = datasets.load_dataset(str(run_dir / "problems"))
    if configs["problems"].source == "gsm_symbolic":
        test_templates = set(run_problems["test"]["template"]) if "test" in run_problems else set()
        generated = build_problems(
            ProblemsConfig(
                source="gsm_symbolic", size=args.pool_size, seed=args.pool_seed + round_index - 1, test_fraction=0.0
            )
        )["train"]
        rows = [r for r in generated if r["template"] not in test_templates]
        logger.info(
            "pool: %d generated, %d from training templates (test templates excluded)", len(generated), len(rows)
        )
    else:
        pairs = datasets.load_dataset(str(run_dir / "op_pairs"))["train"]
        not_validated = {i for i, v in zip(pairs["id"], pairs["validated"]) if not v}
        rows = [r for r in run_problems["train"] if r["id"] in not_validated]
    return [r for r in rows if r["status"] == "ok" and r["id"] not in seen]


def teacher_cots(problems: list[dict], configs: dict, args: LoopArguments, work_dir: Path) -> list[str]:
    """CoTs the teacher writes now for ``problems`` (``problems`` rows): the ``cot_traces`` stage itself, with the
    run's generation settings, ``--mop_up_teacher`` (default: the run's first teacher) and ``--max_new_tokens``."""
    from mycelium_datasets.cot_traces import build_cot_traces
    from mycelium_datasets.problems import FEATURES as PROBLEM_FEATURES

    recorded = configs["cot_traces"]
    config = dataclasses.replace(
        recorded,
        cot_source="teacher",
        teachers=[args.mop_up_teacher or recorded.teachers[0]],
        max_new_tokens=args.max_new_tokens,
    )
    data = datasets.DatasetDict(train=datasets.Dataset.from_list(problems, features=PROBLEM_FEATURES))
    return list(build_cot_traces(data, config, work_dir)["train"]["cot"])


# ---------------------------------------------------------------------------------------------------------------
# Round artifacts
# ---------------------------------------------------------------------------------------------------------------


def write_round_artifact(round_dir: Path, name: str, data: datasets.DatasetDict, lineage: dict, round_index: int):
    """Write ``round_dir/name`` as the artifact ``name`` is declared (Parquet + card + marker, for model lineage),
    described as this round's training set."""
    from mycelium_datasets.builders import get_builder, write_artifact

    fingerprint = Hasher.hash({split: d._fingerprint for split, d in data.items()} | {"round": round_index})
    rows = sum(len(d) for d in data.values())
    write_artifact(
        round_dir,
        get_builder(name),
        data,
        fingerprint=fingerprint,
        lineage=lineage,
        settings={"round": round_index},
        rows_in=rows,
        dropped={},
        description=(
            f"Round {round_index} of the self-improving loop: the run's `{name}` plus the rows of problems the "
            "students (or the mop-up) solved with an operation DAG that executes to the gold answer. This round "
            f"added {lineage.get('added_self', 0)} problems solved by the students and "
            f"{lineage.get('added_mop_up', 0)} mopped up, {lineage.get('added_mop_up_tier3', 0)} of them read "
            "with parse tier 3 (a CoT step no parser read, read with the round's operation classifier)."
        ),
        limitations=["Self-labelled rows carry the students' own regions: right answer, possibly imperfect regions."],
        marker={"round": round_index, "upstream": lineage["upstream"], "provenance": lineage["provenance"]},
    )


@dataclass(frozen=True)
class RoundCounts:
    """What a round added to the training sets."""

    self_solved: int  # problems the students' own programs solved (rejection sampling)
    added: int  # problems added in all, mop-ups included
    mop_up_tier3: int  # mop-ups whose reference was read with parse tier 3


def train_round(
    run_dir: Path,
    round_dir: Path,
    r: int,
    *,
    base: dict[str, datasets.DatasetDict],
    added: dict[str, list[dict]],
    counts: RoundCounts,
    students: StudentsConfig,
) -> dict:
    """Write round ``r``'s training sets (the run's plus everything added so far) as artifacts, retrain every
    student on them, and evaluate the round's students on the run's test split; returns the evaluation summary."""
    from mycelium_datasets.student_sets import with_label_names
    from mycelium_models.evaluation import (
        EVAL_COLUMNS,
        evaluate_students,
        references_from_run,
        scoring_rows,
        write_eval,
    )
    from mycelium_models.model_card import add_end_to_end, problem_source
    from mycelium_models.solver import MyceliumSolver
    from mycelium_models.students import STUDENTS
    from mycelium_models.train import train
    from mycelium_run.stage import training_arguments

    run, here = RunFolder(run_dir), RunFolder(round_dir)
    student_sets = read_run_configs(run_dir)["io_tags"]
    backbone, max_length = student_sets.student_tokenizer, student_sets.max_length
    artifacts = list(base)
    lineage = {
        "upstream": {},
        "provenance": {},
        "round": r,
        "added_self": counts.self_solved,
        "added_mop_up": counts.added - counts.self_solved,
        "added_mop_up_tier3": counts.mop_up_tier3,
    }
    for name in artifacts:
        marker = json.loads(run.marker(name).read_text())
        lineage["upstream"][name] = {k: marker[k] for k in ("version", "fingerprint")}
        lineage["provenance"].update(marker.get("provenance") or {})
        # a label the round adds (an operation sequence the run never held) joins the artifact's label set
        splits = with_label_names(base[name], added[name])
        train_split = splits["train"]
        if added[name]:
            train_split = datasets.concatenate_datasets(
                [train_split, datasets.Dataset.from_list(added[name], features=train_split.features)]
            )
        data = datasets.DatasetDict({"train": train_split, **{k: v for k, v in splits.items() if k != "train"}})
        write_round_artifact(round_dir, name, data, lineage, r)
    for kind in STUDENTS:
        evaluate = len(base[STUDENTS[kind].artifact].get("test", [])) > 0
        training_args = training_arguments(students, here.checkpoints(kind), kind, evaluate)
        args = student_arguments(students, round_dir, backbone, max_length)
        train(kind, args, training_args)
        shutil.rmtree(here.checkpoints(kind), ignore_errors=True)
    test = datasets.load_dataset(str(run.artifact("problems")))["test"]
    test_rows = scoring_rows(test.select_columns([c for c in EVAL_COLUMNS if c in test.column_names]))
    solver = MyceliumSolver.from_pretrained(here.models)
    summary, predictions = evaluate_students(solver, test_rows, references_from_run(run_dir, "test"))
    summary.update({"split": "test", "round": r})
    write_eval(here.eval, summary, predictions, title=f"Loop round {r}: students on the test split")
    if summary["n_scored"]:  # the round's cards get their end-to-end accuracy, as the run's do
        add_end_to_end(here.models, summary["accuracy"], "test", source=problem_source(run_dir))
    return summary


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------


def check_run_folder(run_dir: str | Path) -> Path:
    """``run_dir`` when it holds what a loop starts from (a finished ``mycelium run``: its config, evaluation,
    students and ``io_tags``), else a ``FileNotFoundError`` naming the first missing file. ``mycelium loop`` asks
    before it takes the run folder's lock, so a refused command writes nothing."""
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    needed = (
        run.run_config,
        run.eval / "eval.json",
        run.student("tagger") / "config.json",
        run.artifact("io_tags") / "README.md",
    )
    for path in needed:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `mycelium run --out {run_dir}` first")
    return run_dir


def run_loop(args: LoopArguments) -> dict:
    from mycelium_datasets.answers import answers_match
    from mycelium_datasets.defaults import load_spacy
    from mycelium_models.evaluation import reference_from_solution
    from mycelium_models.solver import MyceliumSolver
    from mycelium_models.students import STUDENTS
    from mycelium_models.train import binder_constants

    if args.mop_up not in ("none", "reference", "teacher"):
        raise ValueError(f"--mop_up must be none, reference or teacher, got {args.mop_up!r}")
    run_dir = check_run_folder(args.run_dir)
    run = RunFolder(run_dir)
    eval0 = json.loads((run.eval / "eval.json").read_text())
    if eval0["accuracy"] is None:  # every round is measured against it
        raise ValueError(
            f"{run.eval} scored no problem (no test problem has a usable gold answer), so no round's gain "
            "can be measured: build the run from problems with answers"
        )
    configs = read_run_configs(run_dir)
    students = configs["students"]
    backbone = configs["io_tags"].student_tokenizer
    max_length = configs["io_tags"].max_length
    artifacts = [student.artifact for student in STUDENTS.values()]
    loop_dir = run_dir / "loop"
    loop_dir.mkdir(exist_ok=True)

    base = {name: datasets.load_dataset(str(run.artifact(name))) for name in artifacts}

    rounds = [
        {
            "round": 0,
            "accuracy": eval0["accuracy"],
            **{f"{name}_train": len(base[name]["train"]) for name in artifacts},
            "added_self": 0,
            "added_mop_up": 0,
            "added_mop_up_tier3": 0,
            "pool": 0,
            "models": str(run.models),
        }
    ]
    added: dict[str, list[dict]] = {name: [] for name in artifacts}  # training rows added so far, per artifact
    seen = set(datasets.load_dataset(str(run.artifact("problems")))["train"]["id"])
    models = run.models
    stop_reason = f"reached --max_rounds {args.max_rounds}"
    for r in range(1, args.max_rounds + 1):
        round_dir = loop_dir / f"round-{r}"
        done = round_dir / "round.json"
        if done.is_file():
            record = json.loads(done.read_text())
            logger.info("round %d is complete (accuracy %.3f); resuming after it", r, record["accuracy"])
            previous = json.loads((round_dir / "added.json").read_text())
            for name in artifacts:
                added[name] += previous[name]
            seen.update(previous["pool_ids"])
        else:
            shutil.rmtree(round_dir, ignore_errors=True)
            round_dir.mkdir(parents=True)
            started = time.time()
            pool = build_pool(run_dir, configs, args, r, seen)
            solver = MyceliumSolver.from_pretrained(models)
            traces = solver.solve([p["problem"] for p in pool])
            solved, failed = [], []
            for p, trace in zip(pool, traces):
                ok = trace["answer"] is not None and answers_match(trace["answer"], p["answer"]).match
                if ok:
                    solved.append(solved_row(p, trace_ops(p["problem"], trace)))
                else:
                    failed.append(p)
            n_self, n_tier3 = len(solved), 0
            if args.mop_up != "none" and failed:
                if args.mop_up == "teacher":
                    cots = teacher_cots(failed, configs, args, RunFolder(round_dir).work("mop_up"))
                else:
                    cots = [p["solution"] or "" for p in failed]
                # operand clauses, as op_pairs parses them (its pipeline, not clause_regions')
                docs = load_spacy(configs["op_pairs"].op_spacy_pipeline).pipe([p["problem"] for p in failed])
                fallback = solver if args.parse_tier3 else None
                for p, cot, doc in zip(failed, cots, docs):
                    if not cot:
                        continue
                    reference = reference_from_solution(p["problem"], cot, p["answer"], doc, fallback=fallback)
                    if reference["validated"] and any(op["region"]["char_start"] >= 0 for op in reference["ops"]):
                        solved.append(solved_row(p, reference["ops"]))
                        n_tier3 += any(op["parse_tier"] == 3 for op in reference["ops"])
            new = student_rows(solved, backbone, max_length, binder_constants(base["bindings"]["train"]))
            (round_dir / "added.json").write_text(json.dumps({**new, "pool_ids": [p["id"] for p in pool]}))
            for name in artifacts:
                added[name] += new[name]
            seen.update(p["id"] for p in pool)
            record = {
                "round": r,
                **{f"{name}_train": len(base[name]["train"]) + len(added[name]) for name in artifacts},
                "added_self": n_self,
                "added_mop_up": len(solved) - n_self,
                "added_mop_up_tier3": n_tier3,
                "pool": len(pool),
                "pool_solved_by_students": n_self / len(pool) if pool else 0.0,
            }
            if not solved:  # the same training sets as the last round: retraining would only reproduce it
                record.update(accuracy=rounds[-1]["accuracy"], models=str(models), trained=False)
            else:
                counts = RoundCounts(self_solved=n_self, added=len(solved), mop_up_tier3=n_tier3)
                summary = train_round(run_dir, round_dir, r, base=base, added=added, counts=counts, students=students)
                record.update(accuracy=summary["accuracy"], models=str(RunFolder(round_dir).models), trained=True)
            record["seconds"] = round(time.time() - started, 1)
            done.write_text(json.dumps(record, indent=2))
        rounds.append(record)
        models = Path(record["models"])
        gain = record["accuracy"] - rounds[-2]["accuracy"]
        if record["added_self"] + record["added_mop_up"] == 0:
            stop_reason = f"round {r} added no new validated problem"
            break
        if gain < args.min_gain:
            stop_reason = f"round {r} improved accuracy by {gain:+.3f} (< {args.min_gain})"
            break
    best = max(rounds, key=lambda x: x["accuracy"])
    result = {"rounds": rounds, "stop_reason": stop_reason, "best_round": best["round"], "best_models": best["models"]}
    (loop_dir / "loop.json").write_text(json.dumps(result, indent=2))
    write_loop_report(loop_dir, result, args)
    return result


def write_loop_report(loop_dir: Path, result: dict, args: LoopArguments) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = result["rounds"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([r["round"] for r in rounds], [r["accuracy"] for r in rounds], marker="o")
    ax.set_xlabel("round")
    ax.set_ylabel("E2E accuracy (test split)")
    ax.set_xticks([r["round"] for r in rounds])
    ax.set_title("Self-improving loop")
    fig.tight_layout()
    fig.savefig(loop_dir / "rounds.png", dpi=110)
    plt.close(fig)
    lines = [
        "# Self-improving loop",
        "",
        f"Settings: {json.dumps(dataclasses.asdict(args))}",
        "",
        "| round | E2E accuracy (test) | tagger rows | classifier rows | binder rows | added (students) "
        "| added (mop-up) | of which read with tier 3 | pool |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round']} | {r['accuracy']:.3f} | {r['io_tags_train']} | {r['op_classes_train']} | "
            f"{r.get('bindings_train', '')} | "
            f"{r['added_self']} | {r['added_mop_up']} | {r.get('added_mop_up_tier3', 0)} | {r['pool']} |"
        )
    lines += [
        "",
        "![rounds](rounds.png)",
        "",
        f"Stopped: {result['stop_reason']}. Best: round {result['best_round']} (`{result['best_models']}`).",
        "",
        "Each round's training sets are `round-N/io_tags`, `round-N/op_classes` and `round-N/bindings` (load with "
        "`load_dataset`), its "
        "students `round-N/models`, its evaluation `round-N/eval/report.md`.",
    ]
    path = loop_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
