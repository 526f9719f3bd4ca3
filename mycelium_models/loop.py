"""``mycelium loop``: the self-improving loop on a finished run folder.

Round 0 is the run itself (``DIR/models``, ``DIR/eval``). Each later round:

1. the current students solve a **pool** of training-side problems they have not been trained on (for a
   ``gsm_symbolic`` run: freshly generated problems from the *training* templates only, never a test template;
   for other sources: the run's training problems whose CoT did not validate);
2. every pool problem the students answer correctly — their operation DAG executed to the gold answer, which is the
   same verifier that admits the teacher's traces — becomes new training rows: its regions as IO tags, each
   (region, operation) as a classifier example;
3. where configured (``--mop_up reference|teacher``), failures are mopped up: the problem's own solution, or a CoT
   the teacher writes now, is parsed, and added when its DAG executes to the gold answer;
4. both students are retrained on the run's sets plus everything added so far, and evaluated on the run's unseen
   test split exactly as in ``mycelium run``.

Each round's training sets are versioned artifacts (``DIR/loop/round-N/io_tags``, ``op_classes``: Parquet + card
with the round, fingerprint and lineage), with its models and evaluation beside them. The loop stops when accuracy
improves by less than ``--min_gain`` (1 point), when nothing new was added, or after ``--max_rounds``. A round
is complete when ``round.json`` is written (last); rerunning resumes after the last complete round.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.fingerprint import Hasher

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


# ---------------------------------------------------------------------------------------------------------------
# Rows from solved problems
# ---------------------------------------------------------------------------------------------------------------


def rows_from_regions(
    problem_id: str, problem: str, regions_ops: list[tuple[int, int, str]], tokenizer, max_length: int
) -> tuple[dict, list[dict]]:
    """One ``io_tags`` row and the ``op_classes`` rows for a problem whose (region, operation) pairs are known."""
    from mycelium_datasets.op_graph import OP_NAMES
    from mycelium_datasets.student_sets import io_labels

    encoded = tokenizer(
        problem, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True, max_length=max_length
    )
    offsets = [tuple(o) for o in encoded["offset_mapping"]]
    regions = sorted({(a, b) for a, b, _ in regions_ops})
    io_row = {
        "id": problem_id,
        "problem": problem,
        "input_ids": encoded["input_ids"],
        "offsets": [list(o) for o in offsets],
        "labels": io_labels(offsets, regions, encoded["special_tokens_mask"]),
    }
    op_rows = [
        {"id": f"{problem_id}#op{k}", "text": problem[a:b], "label": OP_NAMES.index(op)}
        for k, (a, b, op) in enumerate(regions_ops)
        if op in OP_NAMES and problem[a:b].strip()
    ]
    return io_row, op_rows


def _reference_regions(reference: dict) -> list[tuple[int, int, str]]:
    return [
        (op["region"]["char_start"], op["region"]["char_end"], op["op"])
        for op in reference["ops"]
        if op["region"]["char_start"] >= 0
    ]


# ---------------------------------------------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------------------------------------------


def build_pool(run_dir: Path, run_config: dict, args: LoopArguments, round_index: int, seen: set[str]) -> list[dict]:
    """Training-side problems for round ``round_index`` that no student has been trained on."""
    from mycelium_datasets.problems import ProblemsConfig, build_problems

    run_problems = datasets.load_dataset(str(run_dir / "problems"))
    if run_config["problems"]["source"] == "gsm_symbolic":
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
    return [
        {"id": r["id"], "problem": r["problem"], "answer": r["answer"], "solution": r["solution"]}
        for r in rows
        if r["status"] == "ok" and r["id"] not in seen
    ]


def _teacher_cots(problems: list[dict], teacher: str, max_new_tokens: int) -> list[dict]:
    from mycelium_datasets.teacher import DEFAULT_SYSTEM_PROMPT, build_prompt, generate, load_teacher

    model, tokenizer = load_teacher(teacher)
    out = []
    for start in range(0, len(problems), 8):
        chunk = problems[start : start + 8]
        prompts = [build_prompt(tokenizer, p["problem"], DEFAULT_SYSTEM_PROMPT) for p in chunk]
        out.extend(generate(model, tokenizer, prompts, max_new_tokens))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Round artifacts
# ---------------------------------------------------------------------------------------------------------------


def write_round_artifact(round_dir: Path, name: str, data: datasets.DatasetDict, lineage: dict, round_index: int):
    """Write ``round_dir/name`` as a Hub dataset folder (Parquet + card) and its marker (for model lineage)."""
    from mycelium_datasets.card import render_dataset_card

    fingerprint = Hasher.hash({split: d._fingerprint for split, d in data.items()} | {"round": round_index})
    folder = round_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    data_files = {split: f"data/{split}-{fingerprint[:12]}-00000-of-00001.parquet" for split in data}
    for split, d in data.items():
        d.to_parquet(str(folder / data_files[split]))
    rows = sum(len(d) for d in data.values())
    card = render_dataset_card(
        artifact=name,
        version_="1.0.0",
        description=(
            f"Round {round_index} of the self-improving loop: the run's `{name}` plus the rows of problems the "
            "students (or the mop-up) solved with an operation DAG that executes to the gold answer."
        ),
        dataset=data,
        settings={"round": round_index},
        lineage=lineage,
        fingerprint=fingerprint,
        rows_in=rows,
        dropped={},
        stat_columns=("label",) if name == "op_classes" else (),
        limitations=["Self-labelled rows carry the students' own regions: right answer, possibly imperfect regions."],
        load_path=str(folder),
        data_files=data_files,
    )
    (folder / "README.md").write_text(card, encoding="utf-8")
    marker_dir = round_dir / ".mycelium"
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / f"{name}.json").write_text(
        json.dumps(
            {
                "artifact": name,
                "version": "1.0.0",
                "fingerprint": fingerprint,
                "rows": {s: len(d) for s, d in data.items()},
                "round": round_index,
                **lineage,
            },
            indent=2,
        )
    )


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------


def run_loop(args: LoopArguments) -> dict:
    from mycelium_datasets.answers import answers_match
    from mycelium_datasets.defaults import load_spacy
    from mycelium_datasets.student_sets import load_student_tokenizer
    from mycelium_models.evaluation import evaluate_students, reference_from_solution, references_from_run, write_eval
    from mycelium_models.solver import MyceliumSolver
    from mycelium_models.stage import STUDENTS, StudentsConfig, training_arguments
    from mycelium_models.train import StudentTrainingArguments, train

    if args.mop_up not in ("none", "reference", "teacher"):
        raise ValueError(f"--mop_up must be none, reference or teacher, got {args.mop_up!r}")
    run_dir = Path(args.run_dir)
    for needed in ("run_config.json", "eval/eval.json", "models/tagger/config.json", "io_tags/README.md"):
        if not (run_dir / needed).is_file():
            raise FileNotFoundError(f"{run_dir / needed} is missing: run `mycelium run --out {run_dir}` first")
    run_config = json.loads((run_dir / "run_config.json").read_text())
    students = StudentsConfig(**run_config.get("students", {}))
    backbone = run_config["io_tags"]["student_tokenizer"]
    max_length = run_config["io_tags"]["max_length"]
    tokenizer = load_student_tokenizer(backbone)
    loop_dir = run_dir / "loop"
    loop_dir.mkdir(exist_ok=True)

    test = datasets.load_dataset(str(run_dir / "problems"))["test"]
    test_rows = [
        {"id": r["id"], "problem": r["problem"], "answer": r["answer"] if r["status"] == "ok" else None} for r in test
    ]
    test_refs = references_from_run(run_dir, "test")
    base = {name: datasets.load_dataset(str(run_dir / name)) for name in STUDENTS.values()}

    eval0 = json.loads((run_dir / "eval" / "eval.json").read_text())
    rounds = [
        {
            "round": 0,
            "accuracy": eval0["accuracy"],
            "io_tags_train": len(base["io_tags"]["train"]),
            "op_classes_train": len(base["op_classes"]["train"]),
            "added_self": 0,
            "added_mop_up": 0,
            "pool": 0,
            "models": str(run_dir / "models"),
        }
    ]
    added_io: list[dict] = []
    added_op: list[dict] = []
    seen = set(datasets.load_dataset(str(run_dir / "problems"))["train"]["id"])
    models = run_dir / "models"
    stop_reason = f"reached --max_rounds {args.max_rounds}"
    for r in range(1, args.max_rounds + 1):
        round_dir = loop_dir / f"round-{r}"
        done = round_dir / "round.json"
        if done.is_file():
            record = json.loads(done.read_text())
            logger.info("round %d is complete (accuracy %.3f); resuming after it", r, record["accuracy"])
            added = json.loads((round_dir / "added.json").read_text())
            added_io += added["io_tags"]
            added_op += added["op_classes"]
            seen.update(added["pool_ids"])
        else:
            shutil.rmtree(round_dir, ignore_errors=True)
            round_dir.mkdir(parents=True)
            started = time.time()
            pool = build_pool(run_dir, run_config, args, r, seen)
            solver = MyceliumSolver.from_pretrained(models)
            traces = solver.solve([p["problem"] for p in pool])
            new_io, new_op, failed = [], [], []
            for p, trace in zip(pool, traces):
                ok = trace["answer"] is not None and answers_match(trace["answer"], p["answer"]).match
                if ok:
                    pairs = [(op["char_start"], op["char_end"], op["op"]) for op in trace["ops"]]
                    io_row, op_rows = rows_from_regions(p["id"], p["problem"], pairs, tokenizer, max_length)
                    new_io.append(io_row)
                    new_op += op_rows
                else:
                    failed.append(p)
            n_self = len(new_io)
            if args.mop_up != "none" and failed:
                if args.mop_up == "teacher":
                    teacher = args.mop_up_teacher or run_config["cot_traces"]["teachers"][0]
                    cots = [g["text"] for g in _teacher_cots(failed, teacher, args.max_new_tokens)]
                else:
                    cots = [p["solution"] or "" for p in failed]
                docs = load_spacy(run_config["clause_regions"].get("spacy_pipeline")).pipe(
                    [p["problem"] for p in failed]
                )
                for p, cot, doc in zip(failed, cots, docs):
                    if not cot:
                        continue
                    reference = reference_from_solution(p["problem"], cot, p["answer"], doc)
                    pairs = _reference_regions(reference)
                    if reference["validated"] and pairs:
                        io_row, op_rows = rows_from_regions(p["id"], p["problem"], pairs, tokenizer, max_length)
                        new_io.append(io_row)
                        new_op += op_rows
            (round_dir / "added.json").write_text(
                json.dumps({"io_tags": new_io, "op_classes": new_op, "pool_ids": [p["id"] for p in pool]})
            )
            added_io += new_io
            added_op += new_op
            seen.update(p["id"] for p in pool)
            lineage = {
                "upstream": {
                    name: {k: marker[k] for k in ("version", "fingerprint")}
                    for name in STUDENTS.values()
                    for marker in [json.loads((run_dir / ".mycelium" / f"{name}.json").read_text())]
                },
                "round": r,
                "added_self": n_self,
                "added_mop_up": len(new_io) - n_self,
            }
            for name, added in (("io_tags", added_io), ("op_classes", added_op)):
                train_split = base[name]["train"]
                if added:
                    train_split = datasets.concatenate_datasets(
                        [train_split, datasets.Dataset.from_list(added, features=train_split.features)]
                    )
                data = datasets.DatasetDict(
                    {"train": train_split, **{k: v for k, v in base[name].items() if k != "train"}}
                )
                write_round_artifact(round_dir, name, data, lineage, r)
            for kind in STUDENTS:
                training_args = training_arguments(students, round_dir / ".mycelium" / f"checkpoints-{kind}")
                train(kind, StudentTrainingArguments(run_dir=str(round_dir), backbone=backbone), training_args)
                shutil.rmtree(round_dir / ".mycelium" / f"checkpoints-{kind}", ignore_errors=True)
            solver = MyceliumSolver.from_pretrained(round_dir / "models")
            summary, predictions = evaluate_students(solver, test_rows, test_refs)
            summary.update({"split": "test", "round": r})
            write_eval(round_dir / "eval", summary, predictions, title=f"Loop round {r}: students on the test split")
            record = {
                "round": r,
                "accuracy": summary["accuracy"],
                "io_tags_train": len(base["io_tags"]["train"]) + len(added_io),
                "op_classes_train": len(base["op_classes"]["train"]) + len(added_op),
                "added_self": n_self,
                "added_mop_up": len(new_io) - n_self,
                "pool": len(pool),
                "pool_solved_by_students": n_self / len(pool) if pool else 0.0,
                "models": str(round_dir / "models"),
                "seconds": round(time.time() - started, 1),
            }
            done.write_text(json.dumps(record, indent=2))
        rounds.append(record)
        models = round_dir / "models"
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
        "| round | E2E accuracy (test) | tagger rows | classifier rows | added (students) | added (mop-up) | pool |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round']} | {r['accuracy']:.3f} | {r['io_tags_train']} | {r['op_classes_train']} | "
            f"{r['added_self']} | {r['added_mop_up']} | {r['pool']} |"
        )
    lines += [
        "",
        "![rounds](rounds.png)",
        "",
        f"Stopped: {result['stop_reason']}. Best: round {result['best_round']} (`{result['best_models']}`).",
        "",
        "Each round's training sets are `round-N/io_tags` and `round-N/op_classes` (load with `load_dataset`), its "
        "students `round-N/models`, its evaluation `round-N/eval/report.md`.",
    ]
    path = loop_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str]) -> int:
    from transformers import HfArgumentParser

    from mycelium_datasets.answers import shutdown_worker

    parser = HfArgumentParser(LoopArguments, prog="mycelium loop")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(message)s", datefmt="%H:%M:%S")
    try:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
        result = run_loop(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"mycelium: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown_worker()
    for r in result["rounds"]:
        print(
            f"round {r['round']}: accuracy {r['accuracy']:.3f} (+{r['added_self']} self, +{r['added_mop_up']} mop-up)"
        )
    print(f"stopped: {result['stop_reason']}; report: {Path(args.run_dir) / 'loop' / 'report.md'}")
    return 0
