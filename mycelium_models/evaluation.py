"""Honest evaluation of the students, and error attribution.

The students alone answer each problem from its text (no CoT; ``\\boxed{}`` plays no part: the solver never reads
one). An answer is right when it equals the gold answer (math-verify under a time limit, plus the strict numeric
check of :mod:`mycelium_datasets.answers`).

Every wrong answer is attributed to the **first** stage that went wrong, in the field guide's order. A *reference*
is what the pipeline made of the problem's chain of thought: the CoT, its answer, and — when it executed to the gold
answer — its validated operation DAG (operations, problem regions, operand provenance). The rules:

=====================  ==================================================================================
stage                  rule (checked in this order; the first that holds names the failure)
=====================  ==================================================================================
ANSWER_NOT_IN_COT      a CoT exists and the gold answer appears nowhere in it (no number it writes equals
                       the gold value; for a non-numeric gold, its text is not in the CoT)
TEACHER_ERROR          the CoT's own answer is wrong, or the CoT was cut (``finish_reason: length``)
SEGMENTATION           the tagger found no region; or, against a validated reference, a reference region is
                       overlapped by no predicted region, or a predicted region overlaps no reference region
CLASSIFICATION         against a validated reference, a predicted region's operation is not the operation of
                       any reference op whose region it overlaps
EXTRACTION             the solver found too few operands in a region; or, against a validated reference, the
                       problem numbers the solver used differ (as a multiset) from those the reference uses
DEPENDENCY             against a validated reference, the DAG's shape differs: another number of operations,
                       or an operation consuming a different earlier result
SELECTION              the gold value was computed by some operation, but another one was given as the answer
EXECUTION              the DAG could not be executed (e.g. division by zero), or every stage above matched
                       the reference and the executed value is still wrong
UNATTRIBUTED           a wrong answer with no validated reference to compare the stages with: the stage
                       cannot be named honestly (counted, never guessed)
=====================  ==================================================================================

Without a CoT (a problem with no solution and no trace) the first two rules do not apply. The counts add up to the
number of wrong answers.
"""

from __future__ import annotations

import collections
import json
import time
from fractions import Fraction
from pathlib import Path

STAGES = (
    "ANSWER_NOT_IN_COT",
    "TEACHER_ERROR",
    "SEGMENTATION",
    "CLASSIFICATION",
    "EXTRACTION",
    "DEPENDENCY",
    "SELECTION",
    "EXECUTION",
    "UNATTRIBUTED",
)


def _value(text) -> Fraction | None:
    from mycelium_datasets.answers import _plain_value

    if text is None:
        return None
    try:
        return _plain_value(str(text))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _cot_values(cot: str, ops: list[dict]) -> set[Fraction]:
    from mycelium_datasets.numbers import problem_numbers

    values = {v for v, _, _ in problem_numbers(cot)}
    for op in ops or []:
        for key in ("result", "written_result"):
            value = _value(op.get(key))
            if value is not None:
                values.add(value)
    return values


def reference_from_solution(problem: str, solution: str, gold: str | None, doc=None) -> dict:
    """A reference made on the fly from a problem's own solution text (no teacher, no attention): sentence spans,
    then the same operation graph as ``op_pairs`` (:func:`~mycelium_datasets.op_graph.validate_trace`), each op
    placed in the spaCy clause of its first problem operand."""
    from mycelium_datasets.answers import answers_match, extract_answer
    from mycelium_datasets.cot_traces import clean_reference
    from mycelium_datasets.op_graph import validate_trace
    from mycelium_datasets.segment import sentence_cuts

    cot, _ = clean_reference(solution)
    cuts = [0, *sentence_cuts(cot), len(cot)]
    spans = [{"text": cot[a:b], "char_start": a, "char_end": b} for a, b in zip(cuts, cuts[1:]) if b > a]
    dag = validate_trace(problem, gold, spans, [], doc)
    cot_answer, _ = extract_answer(cot, allow_boxed=True)
    return {
        "cot": cot,
        "cot_answer": cot_answer,
        "cot_correct": bool(gold is not None and answers_match(cot_answer, gold).match),
        "finish_reason": "reference",
        "ops": dag["ops"],
        "validated": dag["validated"],
    }


def attribute(trace: dict, gold: str | None, reference: dict | None) -> tuple[str, str]:
    """The first stage that went wrong for a wrong answer, and why (see the module docstring for the rules)."""
    gold_value = _value(gold)
    if reference and reference.get("cot"):
        cot = reference["cot"]
        if gold_value is not None:
            absent = gold_value not in _cot_values(cot, reference.get("ops"))
        else:
            absent = "".join(str(gold).split()) not in "".join(cot.split())
        if absent:
            return "ANSWER_NOT_IN_COT", f"the gold answer {gold} appears nowhere in the CoT"
        if reference.get("finish_reason") == "length":
            return "TEACHER_ERROR", "the CoT was cut at the token limit"
        if not reference.get("cot_correct"):
            return "TEACHER_ERROR", f"the CoT answers {reference.get('cot_answer')}, gold is {gold}"
    ref_ops = (reference or {}).get("ops") if (reference or {}).get("validated") else None
    regions = [(r["char_start"], r["char_end"], r.get("op")) for r in trace.get("regions", [])]
    if not regions:
        return "SEGMENTATION", trace.get("reason") or "the tagger found no operation region"
    if ref_ops:
        ref_regions = {
            (op["region"]["char_start"], op["region"]["char_end"]) for op in ref_ops if op["region"]["char_start"] >= 0
        }
        missed = [r for r in ref_regions if not any(_overlaps(r, p[:2]) for p in regions)]
        spurious = [p[:2] for p in regions if not any(_overlaps(p[:2], r) for r in ref_regions)]
        if missed or spurious:
            problem = trace.get("problem") or ""
            return "SEGMENTATION", (
                f"missed reference regions {[problem[a:b] for a, b in sorted(missed)]}, "
                f"spurious regions {[problem[a:b] for a, b in spurious]}"
            )
        for a, b, label in regions:
            expected = {
                op["op"] for op in ref_ops if _overlaps((a, b), (op["region"]["char_start"], op["region"]["char_end"]))
            }
            if label is not None and label not in expected:
                return (
                    "CLASSIFICATION",
                    f"region {trace['problem'][a:b]!r} classified {label}, reference {sorted(expected)}",
                )
    if trace.get("stage") == "EXTRACTION":
        return "EXTRACTION", trace.get("reason", "")
    if ref_ops:
        used = collections.Counter(
            _value(o["value"])
            for op in trace.get("ops", [])
            for o in op["operand_sources"]
            if o["source"] == "problem"
        )
        expected = collections.Counter(
            _value(o["value"]) for op in ref_ops for o in op["operands"] if o["source"] == "problem"
        )
        if used != expected:
            return "EXTRACTION", (
                f"used problem numbers {sorted(map(str, used.elements()))}, "
                f"reference {sorted(map(str, expected.elements()))}"
            )
        edges = sorted(
            (i, o["op_index"])
            for i, op in enumerate(trace.get("ops", []))
            for o in op["operand_sources"]
            if o["source"] == "op"
        )
        ref_edges = sorted(
            (i, o["op_index"]) for i, op in enumerate(ref_ops) for o in op["operands"] if o["source"] == "op"
        )
        if len(trace.get("ops", [])) != len(ref_ops) or edges != ref_edges:
            return "DEPENDENCY", (
                f"{len(trace.get('ops', []))} operations with result edges {edges}; "
                f"reference {len(ref_ops)} with {ref_edges}"
            )
    values = [_value(op["result"]) for op in trace.get("ops", [])]
    if gold_value is not None and gold_value in values[:-1]:
        return "SELECTION", f"operation {values.index(gold_value)} computed {gold}, but the last one was given"
    if trace.get("stage") == "EXECUTION":
        return "EXECUTION", trace.get("reason", "")
    if ref_ops:
        return "EXECUTION", f"every stage matched the reference, yet the DAG executes to {trace.get('answer')}"
    return "UNATTRIBUTED", "wrong answer and no validated reference to compare the stages with"


def evaluate_students(
    solver,
    problems: list[dict],
    references: dict[str, dict] | None = None,
    *,
    verify_timeout: float = 5.0,
    spacy_pipeline: str | None = None,
    progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Answer ``problems`` (dicts with ``id``, ``problem``, ``answer``, optional ``solution``) with ``solver`` and
    score them. ``references`` maps an id to a reference (``cot``, ``cot_answer``, ``cot_correct``,
    ``finish_reason``, ``ops``, ``validated``), e.g. from a run's ``cot_traces`` + ``op_pairs``; a problem without
    one gets a reference from its ``solution`` when it has one. Returns the summary and one row per problem."""
    from tqdm.auto import tqdm

    from mycelium_datasets.answers import answers_match

    references = dict(references or {})
    started = time.time()
    texts = [p.get("problem") or "" for p in problems]
    traces = []
    batch = 64
    for start in tqdm(range(0, len(texts), batch), desc="eval/solve", disable=not progress, unit="batch"):
        traces.extend(solver.solve(texts[start : start + batch]))
    solve_seconds = time.time() - started

    need = [p for p in problems if p["id"] not in references and p.get("solution")]
    if need:
        from mycelium_datasets.defaults import load_spacy

        docs = load_spacy(spacy_pipeline).pipe([p["problem"] or "" for p in need])
        for p, doc in tqdm(zip(need, docs), total=len(need), desc="eval/references", disable=not progress):
            references[p["id"]] = reference_from_solution(p["problem"] or "", p["solution"], p.get("answer"), doc)

    rows = []
    for p, trace in zip(problems, traces):
        gold = p.get("answer")
        reference = references.get(p["id"])
        row = {
            "id": p["id"],
            "problem": p.get("problem"),
            "gold": gold,
            "answer": trace["answer"],
            "scored": gold is not None,
            "correct": None,
            "stage": None,
            "reason": "",
            "solver_stage": trace["stage"],
            "regions": trace["regions"],
            "ops": trace["ops"],
            "reference_validated": bool(reference and reference.get("validated")),
            "teacher_correct": (reference or {}).get("cot_correct") if reference and reference.get("cot") else None,
        }
        if gold is None:
            row["reason"] = "no gold answer: not scored"
        else:
            row["correct"] = bool(
                trace["answer"] is not None and answers_match(trace["answer"], gold, timeout=verify_timeout).match
            )
            if not row["correct"]:
                row["stage"], row["reason"] = attribute(trace, gold, reference)
        rows.append(row)
    return summarize(rows, solve_seconds), rows


def summarize(rows: list[dict], solve_seconds: float | None = None) -> dict:
    scored = [r for r in rows if r["scored"]]
    correct = sum(1 for r in scored if r["correct"])
    counts = collections.Counter(r["stage"] for r in scored if not r["correct"])
    wrong = len(scored) - correct
    teacher = [r["teacher_correct"] for r in scored if r["teacher_correct"] is not None]
    summary = {
        "n": len(rows),
        "n_scored": len(scored),
        "correct": correct,
        "accuracy": correct / len(scored) if scored else 0.0,
        "wrong": wrong,
        "attribution": {stage: counts.get(stage, 0) for stage in STAGES},
        "attribution_share": {stage: counts.get(stage, 0) / wrong if wrong else 0.0 for stage in STAGES},
        "solver_answered": sum(1 for r in rows if r["answer"] is not None),
        "reference_validated": sum(1 for r in scored if r["reference_validated"]),
        # the teacher's own accuracy (its CoT's answer), reported apart from the students', never mixed in
        "teacher_accuracy": sum(teacher) / len(teacher) if teacher else None,
        "teacher_n": len(teacher),
    }
    if solve_seconds is not None:
        summary["solve_seconds"] = round(solve_seconds, 3)
        summary["problems_per_second"] = round(len(rows) / solve_seconds, 2) if solve_seconds > 0 else None
    assert sum(summary["attribution"].values()) == wrong, "attribution counts must add up to the failures"
    return summary


def references_from_run(run_dir: str | Path, split: str | None = None) -> dict[str, dict]:
    """References for a run's problems from its ``cot_traces`` and ``op_pairs`` artifacts (those that exist)."""
    import datasets

    run_dir = Path(run_dir)
    refs: dict[str, dict] = {}
    if (run_dir / "cot_traces" / "README.md").is_file():
        traces = datasets.load_dataset(str(run_dir / "cot_traces"))
        for name, data in traces.items():
            if split and name != split:
                continue
            for row in data.select_columns(["id", "cot", "cot_answer", "correct", "finish_reason"]):
                if row["cot"]:
                    refs[row["id"]] = {
                        "cot": row["cot"],
                        "cot_answer": row["cot_answer"],
                        "cot_correct": bool(row["correct"]),
                        "finish_reason": row["finish_reason"],
                        "ops": [],
                        "validated": False,
                    }
    if (run_dir / "op_pairs" / "README.md").is_file():
        pairs = datasets.load_dataset(str(run_dir / "op_pairs"))
        for name, data in pairs.items():
            if split and name != split:
                continue
            for row in data.select_columns(["id", "ops", "validated"]):
                if row["id"] in refs:
                    refs[row["id"]]["ops"] = row["ops"]
                    refs[row["id"]]["validated"] = bool(row["validated"])
    return refs


def write_eval(out_dir: str | Path, summary: dict, rows: list[dict], title: str = "Mycelium evaluation") -> Path:
    """``eval.json``, ``predictions.jsonl``, ``attribution.png`` and a readable ``report.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(summary, indent=2, default=str))
    with (out_dir / "predictions.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    plot_attribution(summary, out_dir / "attribution.png")
    (out_dir / "report.md").write_text(render_eval_markdown(summary, rows, title, "attribution.png"))
    return out_dir / "eval.json"


def plot_attribution(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if s != "UNATTRIBUTED" or summary["attribution"][s]]
    counts = [summary["attribution"][s] for s in stages]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    bars = ax.barh(stages[::-1], counts[::-1], color="#4a7ab0")
    ax.bar_label(bars, padding=2)
    ax.set_xlabel("wrong answers attributed to the stage")
    ax.set_title(f"Error attribution ({summary['wrong']} wrong of {summary['n_scored']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_eval_markdown(summary: dict, rows: list[dict], title: str, plot: str | None) -> str:
    lines = [
        f"# {title}",
        "",
        "The students alone, no chain of thought (`\\boxed{}` plays no part).",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| problems | {summary['n']} (scored: {summary['n_scored']}) |",
        "| **end-to-end accuracy (students, no CoT)** | "
        f"**{summary['accuracy']:.3f}** ({summary['correct']}/{summary['n_scored']}) |",
        f"| solver gave an answer | {summary['solver_answered']} |",
        f"| problems with a validated reference DAG | {summary['reference_validated']} |",
    ]
    if summary.get("teacher_accuracy") is not None:
        lines.append(
            "| teacher's own CoT accuracy (reported apart) | "
            f"{summary['teacher_accuracy']:.3f} ({summary['teacher_n']}) |"
        )
    if summary.get("problems_per_second"):
        lines.append(f"| solver throughput | {summary['problems_per_second']} problems/s |")
    lines += [
        "",
        "## Error attribution",
        "",
        "First stage that went wrong, in the field guide's order "
        "(rules: `mycelium_models/evaluation.py`, docs/evaluation.md).",
        "",
    ]
    if plot:
        lines += [f"![attribution]({plot})", ""]
    lines += ["| stage | wrong answers | share |", "| --- | --- | --- |"]
    for stage in STAGES:
        lines.append(f"| {stage} | {summary['attribution'][stage]} | {summary['attribution_share'][stage]:.1%} |")
    lines.append(f"| **total** | **{summary['wrong']}** | |")
    for stage in STAGES:
        examples = [r for r in rows if r["stage"] == stage][:3]
        if not examples:
            continue
        lines += ["", f"### {stage}", ""]
        for r in examples:
            ops = "; ".join(f"{op['op']}({', '.join(op['operands'])})={op['result']}" for op in r["ops"]) or "none"
            lines.append(
                f"- `{r['id']}`: {_md((r['problem'] or '')[:220])}  \n  gold {_md(r['gold'])}, "
                f"answer {_md(r['answer'])}; ops: {_md(ops)}  \n  why: {_md(r['reason'][:300])}"
            )
    correct = [r for r in rows if r["correct"]][:3]
    if correct:
        lines += ["", "## Solved without a CoT (examples)", ""]
        for r in correct:
            ops = "; ".join(f"{op['op']}({', '.join(op['operands'])})={op['result']}" for op in r["ops"])
            lines.append(f"- `{r['id']}`: {_md((r['problem'] or '')[:220])}  \n  {_md(ops)} -> **{r['answer']}**")
    return "\n".join(lines) + "\n"
