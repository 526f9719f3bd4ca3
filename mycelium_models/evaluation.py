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
SEGMENTATION           the tagger found no unit; or, against the reference binding, a reference unit is
                       overlapped by no predicted unit, or a predicted unit overlaps no reference unit
CLASSIFICATION         a predicted unit's operation sequence is not the sequence of the reference units it
                       overlaps (in text order)
EXTRACTION             an operation got no operand; or, with the same operations laid out, an operation
                       points at other problem quantities or constants than the reference (a multiset for
                       add / mul, a sequence otherwise); with another layout, the problem numbers used
                       differ as a multiset from the reference's
DEPENDENCY             another number of operations, or an operation takes other operations' results than
                       the reference (by layout position)
SELECTION              another operation is the answer than the reference's (same layout), or the gold value
                       was computed by an operation that is not the answer
EXECUTION              the DAG could not be executed (e.g. division by zero, a cycle), or every stage above
                       matched the reference and the executed value is still wrong
UNATTRIBUTED           a wrong answer with no validated reference to compare the stages with: the stage
                       cannot be named honestly (counted, never guessed)
=====================  ==================================================================================

The reference binding is the validated DAG in the solver's own representation (:func:`mycelium_datasets.bindings
.bind`: units, operations in layout order, operands as pointers, the answer operation).

**The oracle ladder** (``ladder`` in ``eval.json``) runs the same problems — those with a validated reference — four
times, swapping in one learned student at a time: (a) the reference units, operations and binding through the
solver's executor (its ceiling: below 99% is a bug), (b) reference units and operations, the binder learned, (c)
reference units, the classifier and the binder learned, (d) everything learned (the tagger too). The drop between two
rungs names the student to improve next.

Without a CoT (a problem with no solution and no trace) the first two rules do not apply. The counts add up to the
number of wrong answers.

**Not scored**: a problem is scored only when it has a usable gold answer: a ``problems`` row whose ``status`` is
``ok`` (:func:`scoring_rows`). Every other row is kept in the predictions, marked ``scored: false`` with its own
``status`` and ``status_reason`` (``missing_answer``, ``invalid_row`` ...), and counted in ``not_scored``; when no
problem is scored, ``accuracy`` is ``None`` (``null`` in ``eval.json``), never 0.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Iterable
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
NO_GOLD = "no_gold_answer"  # the not-scored reason of a problem given without an answer (and without a status)

logger = logging.getLogger(__name__)


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


def reference_from_solution(problem: str, solution: str, gold: str | None, doc=None, fallback=None) -> dict:
    """A reference made on the fly from a problem's own solution text (no teacher, no attention): sentence spans,
    then the same operation graph as ``op_pairs`` (:func:`~mycelium_datasets.op_graph.validate_trace`; ``fallback``,
    an operation classifier such as the solver, turns on parse tier 3), each op placed in the spaCy clause of its
    first problem operand."""
    from mycelium_datasets.answers import answers_match, extract_answer
    from mycelium_datasets.cot_traces import clean_reference
    from mycelium_datasets.op_graph import validate_trace
    from mycelium_datasets.segment import sentence_cuts

    cot, _ = clean_reference(solution)
    cuts = [0, *sentence_cuts(cot), len(cot)]
    spans = [{"text": cot[a:b], "char_start": a, "char_end": b} for a, b in zip(cuts, cuts[1:]) if b > a]
    dag = validate_trace(problem, gold, spans, [], doc, fallback=fallback)
    cot_answer, _ = extract_answer(cot, allow_boxed=True)
    return {
        "cot": cot,
        "cot_answer": cot_answer,
        "cot_correct": bool(gold is not None and answers_match(cot_answer, gold).match),
        "finish_reason": "reference",
        "ops": dag["ops"],
        "validated": dag["validated"],
    }


def reference_binding(problem: str, reference: dict | None) -> dict | None:
    """The validated reference DAG as a binding (units, operations in layout order, pointers, answer operation),
    constants named by value; None without a validated reference (or when it cannot be bound)."""
    from mycelium_datasets.bindings import BindingError, bind

    if not reference or not reference.get("validated") or not reference.get("ops"):
        return None
    if "binding" not in reference:
        try:
            reference["binding"] = bind(problem, reference["ops"], [])
        except BindingError:
            reference["binding"] = None
    return reference["binding"]


def _found(pointer: dict) -> tuple[str, str]:
    """An operand as EXTRACTION compares it: a quantity by position, a constant by value, any result alike."""
    if pointer["kind"] == "quantity":
        return ("quantity", str(pointer["index"]))
    if pointer["kind"] == "constant":
        return ("constant", str(_value(pointer.get("value"))))
    return ("op", "a result")


def _pointer_key(op_name: str, pointers: list[tuple]) -> tuple:
    """Pointers of one operation, compared as a multiset for add / mul and as a sequence otherwise."""
    return tuple(sorted(pointers)) if op_name in ("add", "mul") else tuple(pointers)


def attribute(trace: dict, gold: str | None, reference: dict | None) -> tuple[str, str]:
    """The first stage that went wrong for a wrong answer, and why (see the module docstring for the rules)."""
    gold_value = _value(gold)
    problem = trace.get("problem") or ""
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
    binding = reference_binding(problem, reference)
    if trace.get("decoder"):
        return _attribute_program(trace, gold_value, gold, binding)
    units = [(u["char_start"], u["char_end"]) for u in trace.get("units", [])]
    if not units:
        return "SEGMENTATION", trace.get("reason") or "the tagger found no operation unit"
    if binding:
        ref_units = [(u["char_start"], u["char_end"]) for u in binding["units"]]
        missed = [r for r in ref_units if not any(_overlaps(r, p) for p in units)]
        spurious = [p for p in units if not any(_overlaps(p, r) for r in ref_units)]
        if missed or spurious:
            return "SEGMENTATION", (
                f"missed reference units {[problem[a:b] for a, b in missed]}, "
                f"spurious units {[problem[a:b] for a, b in spurious]}"
            )
        ref_sequences = [[op["op"] for op in binding["ops"] if op["unit"] == k] for k in range(len(ref_units))]
        for unit, (a, b) in zip(trace["units"], units):
            expected = [name for r, seq in zip(ref_units, ref_sequences) if _overlaps((a, b), r) for name in seq]
            if list(unit.get("ops") or []) != expected:
                return "CLASSIFICATION", (
                    f"unit {problem[a:b]!r} classified {'+'.join(unit.get('ops') or [])}, "
                    f"reference {'+'.join(expected)}"
                )
    if trace.get("stage") == "EXTRACTION":
        return "EXTRACTION", trace.get("reason", "")
    ops = trace.get("ops", [])
    if binding:
        same_layout = [op["op"] for op in ops] == [op["op"] for op in binding["ops"]]
        if same_layout:
            for k, (op, ref) in enumerate(zip(ops, binding["ops"])):
                # what each operand slot takes from the problem (a quantity, a constant by value; a result is
                # DEPENDENCY's, so only its place in the order counts here)
                got = [_found(p) for p in op["pointers"]]
                want = [_found(p) for p in ref["operands"]]
                if _pointer_key(op["op"], got) != _pointer_key(op["op"], want):
                    return "EXTRACTION", (
                        f"operation {k} ({op['op']}) takes {[v for _, v in got]}, reference {[v for _, v in want]}"
                    )
        else:
            used = collections.Counter(
                _value(p["value"]) for op in ops for p in op["pointers"] if p["kind"] == "quantity"
            )
            expected = collections.Counter(
                _value(p["value"]) for op in binding["ops"] for p in op["operands"] if p["kind"] == "quantity"
            )
            if used != expected:
                return "EXTRACTION", (
                    f"used problem numbers {sorted(map(str, used.elements()))}, "
                    f"reference {sorted(map(str, expected.elements()))}"
                )
        edges = [_pointer_key(op["op"], [p["index"] for p in op["pointers"] if p["kind"] == "op"]) for op in ops]
        ref_edges = [
            _pointer_key(op["op"], [p["index"] for p in op["operands"] if p["kind"] == "op"]) for op in binding["ops"]
        ]
        if len(ops) != len(binding["ops"]) or edges != ref_edges:
            return "DEPENDENCY", (
                f"{len(ops)} operations with result edges {edges}; reference {len(binding['ops'])} with {ref_edges}"
            )
        if trace.get("answer_op") != binding["answer_op"]:
            return "SELECTION", f"operation {trace.get('answer_op')} was the answer, reference {binding['answer_op']}"
    values = [_value(op.get("result")) for op in ops]
    answer_op = trace.get("answer_op", -1)
    if gold_value is not None and gold_value in values and values.index(gold_value) != answer_op:
        return "SELECTION", f"operation {values.index(gold_value)} computed {gold}, but {answer_op} was the answer"
    if trace.get("stage") == "EXECUTION":
        return "EXECUTION", trace.get("reason", "")
    if binding:
        return "EXECUTION", f"every stage matched the reference, yet the DAG executes to {trace.get('answer')}"
    return "UNATTRIBUTED", "wrong answer and no validated reference to compare the stages with"


def _attribute_program(trace: dict, gold_value, gold, binding: dict | None) -> tuple[str, str]:
    """The stage of a wrong answer of the step decoder, which decodes the whole program at once (the regions are
    only its features, so SEGMENTATION never applies): the gold computed by a step that is not the last
    (SELECTION); against the reference, other operations (CLASSIFICATION: a multiset, n-ary ones counted as their
    binary steps), other problem numbers or constants (EXTRACTION), or the same ones combined otherwise
    (DEPENDENCY); no program at all (EXECUTION)."""
    ops = trace.get("ops", [])
    values = [_value(op.get("result")) for op in ops]
    if gold_value is not None and gold_value in values[:-1]:
        return "SELECTION", f"step {values.index(gold_value)} computed {gold}, but the program went on"
    if not ops:
        return "EXECUTION", trace.get("reason") or "no program"
    if not binding:
        return "UNATTRIBUTED", "wrong answer and no validated reference to compare the stages with"
    got = collections.Counter(op["op"] for op in ops)
    want: collections.Counter = collections.Counter()
    for op in binding["ops"]:
        want[op["op"]] += max(1, len(op["operands"]) - 1)
    if got != want:
        return "CLASSIFICATION", f"steps {sorted(got.elements())}, reference {sorted(want.elements())}"
    used = collections.Counter(_found(p) for op in ops for p in op["pointers"] if p["kind"] != "op")
    expected = collections.Counter(_found(p) for op in binding["ops"] for p in op["operands"] if p["kind"] != "op")
    if used != expected:
        return "EXTRACTION", (
            f"takes {sorted(v for _, v in used.elements())}, reference {sorted(v for _, v in expected.elements())}"
        )
    return "DEPENDENCY", "the reference's operations on the reference's numbers, combined in another order"


# the columns of a ``problems`` split that evaluation reads (``source`` where the problems mix sources)
EVAL_COLUMNS = ("id", "source", "problem", "answer", "status", "status_reason")


def scoring_rows(rows: Iterable[dict]) -> list[dict]:
    """The problems to score, from rows of a ``problems`` artifact: ``id``, ``problem``, ``solution``, ``status``,
    ``status_reason`` and the gold ``answer``, kept only where ``status`` is ``ok`` (a row that cannot be used is
    answered but not scored, with its own reason)."""
    return [
        {
            "id": r["id"],
            "problem": r["problem"],
            "answer": r["answer"] if r["status"] == "ok" else None,
            "solution": r.get("solution"),
            "status": r["status"],
            "status_reason": r.get("status_reason") or "",
            "source": r.get("source") or "",
        }
        for r in rows
    ]


def gold_answer(problem: dict) -> str | None:
    """A problem's gold answer, or `None` when it has none to score against (no ``answer``, or a ``status`` other
    than ``ok``)."""
    return problem.get("answer") if problem.get("status", "ok") == "ok" else None


def not_scored(problem: dict) -> tuple[str, str]:
    """``(status, reason)`` of a problem that is not scored: its own ``status`` and ``status_reason`` from the
    ``problems`` artifact, or ``no_gold_answer`` for a problem given without an answer."""
    status = problem.get("status") or "ok"
    if status == "ok":
        return NO_GOLD, "no gold answer"
    return status, problem.get("status_reason") or status


def evaluate_students(
    solver,
    problems: list[dict],
    references: dict[str, dict] | None = None,
    *,
    verify_timeout: float = 5.0,
    spacy_pipeline: str | None = None,
    progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Answer ``problems`` (dicts with ``id``, ``problem``, ``answer``, optional ``solution``, ``status`` and
    ``status_reason``, e.g. from :func:`scoring_rows`) with ``solver`` and score those with a gold answer (see
    :func:`gold_answer`). ``references`` maps an id to a reference (``cot``, ``cot_answer``, ``cot_correct``,
    ``finish_reason``, ``ops``, ``validated``), e.g. from a run's ``cot_traces`` + ``op_pairs``; a problem without
    one gets a reference from its ``solution`` when it has one. Returns the summary and one row per problem; with
    nothing scored, the summary's ``accuracy`` is `None` and a warning says why."""
    from mycelium_datasets.answers import answers_match
    from mycelium_datasets.runner import progress_bar

    references = dict(references or {})
    started = time.time()
    texts = [p.get("problem") or "" for p in problems]
    traces = []
    batch = 64
    with progress_bar(len(texts), "evaluation: solving", unit=" problems", shown=progress) as bar:
        for start in range(0, len(texts), batch):
            traces.extend(solver.solve(texts[start : start + batch]))
            bar.update(len(texts[start : start + batch]))
    solve_seconds = time.time() - started

    need = [p for p in problems if p["id"] not in references and p.get("solution")]
    if need:
        from mycelium_datasets.defaults import load_spacy

        docs = load_spacy(spacy_pipeline).pipe([p["problem"] or "" for p in need])
        with progress_bar(len(need), "evaluation: references", unit=" problems", shown=progress) as bar:
            for p, doc in zip(need, docs):
                references[p["id"]] = reference_from_solution(p["problem"] or "", p["solution"], p.get("answer"), doc)
                bar.update()

    rows = []
    for p, trace in zip(problems, traces):
        gold = gold_answer(p)
        reference = references.get(p["id"])
        row = {
            "id": p["id"],
            "source": p.get("source") or "",
            "problem": p.get("problem"),
            "gold": gold,
            "answer": trace["answer"],
            "scored": gold is not None,
            "status": p.get("status") or "ok",
            "status_reason": p.get("status_reason") or "",
            "correct": None,
            "stage": None,
            "reason": "",
            "solver_stage": trace["stage"],
            "units": trace["units"],
            "ops": trace["ops"],
            "answer_op": trace["answer_op"],
            "reference_validated": bool(reference and reference.get("validated")),
            "teacher_correct": (reference or {}).get("cot_correct") if reference and reference.get("cot") else None,
        }
        if gold is None:
            row["status"], reason = not_scored(p)
            row["reason"] = f"not scored: {reason}"
        else:
            row["correct"] = bool(
                trace["answer"] is not None and answers_match(trace["answer"], gold, timeout=verify_timeout).match
            )
            if not row["correct"]:
                row["stage"], row["reason"] = attribute(trace, gold, reference)
        rows.append(row)
    summary = summarize(rows, solve_seconds)
    if not summary["n_scored"]:
        logger.warning(
            "nothing scored: none of the %d problems has a usable gold answer (%s); accuracy is null",
            summary["n"],
            ", ".join(f"{status} ×{count}" for status, count in summary["not_scored"].items()) or "no problems",
        )
    summary["ladder"] = oracle_ladder(solver, problems, references, rows, verify_timeout)
    summary["beam"] = beam_effect(solver, problems, verify_timeout)
    for row, rungs in zip(rows, summary["ladder"].pop("per_problem")):
        row["ladder"] = rungs
    return summary, rows


RUNGS = (
    ("a", "reference units + operations + binding (the executor's ceiling)"),
    ("b", "chain: reference units + operations, learned binder"),
    ("c", "chain: reference units, learned classifier + binder"),
    ("d", "chain: everything learned (tagger, classifier, binder)"),
    ("decoder_reference_regions", "step decoder, reference units as its regions"),
    ("decoder_tagger_regions", "step decoder, the tagger's units as its regions (the solver's default)"),
    ("decoder_no_regions", "step decoder, no regions"),
)


def oracle_ladder(solver, problems: list[dict], references: dict, rows: list[dict], verify_timeout: float) -> dict:
    """The oracle ladder on the scored problems that have a validated reference binding: rung by rung, how many the
    solver answers when one more student is learned, and the step decoder's ablations beside it (see the module
    docstring). Returns per rung ``correct``, ``n``, ``accuracy``, and ``per_problem`` (each problem's rungs: True /
    False, None when it is not on the ladder). A solver without a step decoder has only the chain's rungs."""
    from mycelium_datasets.answers import answers_match
    from mycelium_models.solver import execute_into_trace

    chosen, bindings = [], []
    for k, p in enumerate(problems):
        binding = reference_binding(p.get("problem") or "", references.get(p["id"]))
        if binding is not None and gold_answer(p) is not None:
            chosen.append(k)
            bindings.append(binding)
    texts = [problems[k]["problem"] for k in chosen]
    units = [[(u["char_start"], u["char_end"]) for u in b["units"]] for b in bindings]
    operations = [[{"op": op["op"], "unit": op["unit"]} for op in b["ops"]] for b in bindings]
    rung_a = []
    for text, b, unit_spans, ops in zip(texts, bindings, units, operations):
        trace = {"units": [{"char_start": x, "char_end": y, "text": text[x:y]} for x, y in unit_spans]}
        pointers = [
            [{**p, "index": -1} if p["kind"] == "constant" else p for p in op["operands"]] for op in b["ops"]
        ]  # constants by value: the reference may use one outside the binder's vocabulary
        rung_a.append(
            execute_into_trace(text, {**trace, "stage": None, "answer": None}, ops, pointers, b["answer_op"], [])
        )
    traces = {"a": rung_a}
    # the solver's own answers (rows) are one rung: the chain's last without a step decoder, else the decoder's
    # with the tagger's regions
    answered = "d" if solver.decoder is None else "decoder_tagger_regions"
    if texts:
        traces["b"] = solver.solve_chain(texts, units=units, operations=operations)
        traces["c"] = solver.solve_chain(texts, units=units)
        if solver.decoder is not None:
            traces["d"] = solver.solve_chain(texts)
            traces["decoder_reference_regions"] = solver.solve_with_decoder(texts, units=units)
            traces["decoder_no_regions"] = solver.solve_with_decoder(texts, regions=False)
    rungs = [(rung, text) for rung, text in RUNGS if not rung.startswith("decoder") or solver.decoder is not None]
    per_problem = [{rung: None for rung, _ in rungs} for _ in problems]
    ladder: dict = {}
    for rung, description in rungs:
        correct = 0
        for j, k in enumerate(chosen):
            if rung == answered:
                right = bool(rows[k]["correct"])
            else:
                answer = traces[rung][j]["answer"]
                gold = problems[k]["answer"]
                right = bool(answer is not None and answers_match(answer, gold, timeout=verify_timeout).match)
            per_problem[k][rung] = right
            correct += right
        ladder[rung] = {
            "description": description,
            "correct": correct,
            "n": len(chosen),
            "accuracy": correct / len(chosen) if chosen else None,
        }
    ladder["per_problem"] = per_problem
    return ladder


BEAM_WIDTHS = (1, 4, 8, 16)


def beam_effect(solver, problems: list[dict], verify_timeout: float, widths=BEAM_WIDTHS) -> list[dict]:
    """The step decoder's accuracy and speed against its beam width, on the scored problems: per width ``beams``,
    ``correct``, ``n``, ``accuracy``, ``seconds`` and ``problems_per_second`` (empty without a step decoder)."""
    from mycelium_datasets.answers import answers_match

    scored = [p for p in problems if gold_answer(p) is not None]
    if solver.decoder is None or not scored:
        return []
    texts = [p["problem"] or "" for p in scored]
    units = solver.units(texts)  # the tagger runs once; only the decoding is timed
    effect = []
    for width in widths:
        started = time.time()
        traces = solver.solve_with_decoder(texts, units=units, num_beams=width)
        seconds = time.time() - started
        correct = sum(
            bool(t["answer"] is not None and answers_match(t["answer"], p["answer"], timeout=verify_timeout).match)
            for t, p in zip(traces, scored)
        )
        effect.append(
            {
                "beams": width,
                "correct": correct,
                "n": len(scored),
                "accuracy": correct / len(scored),
                "seconds": round(seconds, 3),
                "problems_per_second": round(len(scored) / seconds, 2) if seconds > 0 else None,
            }
        )
    return effect


def summarize(rows: list[dict], solve_seconds: float | None = None) -> dict:
    """The counts of scored rows: ``accuracy`` (`None` when nothing is scored), the attribution of the wrong
    answers, and ``not_scored`` (rows without a usable gold answer, per ``status``)."""
    scored = [r for r in rows if r["scored"]]
    correct = sum(1 for r in scored if r["correct"])
    counts = collections.Counter(r["stage"] for r in scored if not r["correct"])
    wrong = len(scored) - correct
    teacher = [r["teacher_correct"] for r in scored if r["teacher_correct"] is not None]
    summary = {
        "n": len(rows),
        "n_scored": len(scored),
        "correct": correct,
        "accuracy": correct / len(scored) if scored else None,
        "not_scored": dict(collections.Counter(r.get("status") or NO_GOLD for r in rows if not r["scored"])),
        "wrong": wrong,
        "attribution": {stage: counts.get(stage, 0) for stage in STAGES},
        "attribution_share": {stage: counts.get(stage, 0) / wrong if wrong else 0.0 for stage in STAGES},
        "solver_answered": sum(1 for r in rows if r["answer"] is not None),
        "reference_validated": sum(1 for r in scored if r["reference_validated"]),
        # the teacher's own accuracy (its CoT's answer), reported apart from the students', never mixed in
        "teacher_accuracy": sum(teacher) / len(teacher) if teacher else None,
        "teacher_n": len(teacher),
    }
    sources = collections.Counter(r.get("source") or "" for r in scored)
    if len(sources) > 1:  # a mix: each source's held-out slice on its own (GSM8K's is the one that judges)
        summary["by_source"] = {
            source: {
                "correct": (right := sum(1 for r in scored if (r.get("source") or "") == source and r["correct"])),
                "n_scored": n,
                "accuracy": right / n,
            }
            for source, n in sorted(sources.items())
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


def accuracy_text(summary: dict) -> str:
    """The end-to-end accuracy of an evaluation summary for a report: ``**0.250** (1/4)``, or, when nothing was
    scored, what was not (never a 0.000 of nothing)."""
    if summary.get("accuracy") is None:
        reasons = ", ".join(f"{status} ×{n}" for status, n in (summary.get("not_scored") or {}).items())
        return f"n/a: nothing scored (none of {summary['n']} problems has a usable gold answer: {reasons or 'none'})"
    return f"**{summary['accuracy']:.3f}** ({summary['correct']}/{summary['n_scored']})"


def render_eval_markdown(summary: dict, rows: list[dict], title: str, plot: str | None) -> str:
    lines = [
        f"# {title}",
        "",
        "The students alone, no chain of thought (`\\boxed{}` plays no part).",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| problems | {summary['n']} (scored: {summary['n_scored']}) |",
        f"| **end-to-end accuracy (students, no CoT)** | {accuracy_text(summary)} |",
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
    lines += by_source_markdown(summary.get("by_source"))
    lines += not_scored_markdown(summary, rows)
    lines += ladder_markdown(summary.get("ladder"))
    lines += beam_markdown(summary.get("beam"))
    if not summary["n_scored"]:
        return "\n".join(lines) + "\n"
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
            ops = _ops_text(r) or "none"
            lines.append(
                f"- `{r['id']}`: {_md((r['problem'] or '')[:220])}  \n  gold {_md(r['gold'])}, "
                f"answer {_md(r['answer'])}; ops: {_md(ops)}  \n  why: {_md(r['reason'][:300])}"
            )
    correct = [r for r in rows if r["correct"]][:3]
    if correct:
        lines += ["", "## Solved without a CoT (examples)", ""]
        for r in correct:
            ops = _ops_text(r)
            lines.append(f"- `{r['id']}`: {_md((r['problem'] or '')[:220])}  \n  {_md(ops)} -> **{r['answer']}**")
    return "\n".join(lines) + "\n"


def by_source_markdown(by_source: dict | None) -> list[str]:
    """Each source's accuracy when the problems mix sources, as a Markdown table (nothing for one source)."""
    if not by_source:
        return []
    lines = ["", "## By source", "", "| source | answered correctly | accuracy |", "| --- | --- | --- |"]
    for source, s in by_source.items():
        lines.append(f"| {_md(source) or '(none)'} | {s['correct']}/{s['n_scored']} | {s['accuracy']:.3f} |")
    return lines


def not_scored_markdown(summary: dict, rows: list[dict], examples: int = 3) -> list[str]:
    """The problems that were answered but not scored, per status, with a few examples and each one's reason."""
    counts = summary.get("not_scored") or {}
    if not counts:
        return []
    lines = ["", "## Not scored", "", "Answered by the students but not scored: no usable gold answer.", ""]
    lines += ["| status | problems | example reasons |", "| --- | --- | --- |"]
    for status, n in counts.items():
        shown = [r for r in rows if not r["scored"] and r.get("status") == status][:examples]
        reasons = "; ".join(f"`{r['id']}`: {_md(r['reason'][:120])}" for r in shown)
        lines.append(f"| {status} | {n} | {reasons} |")
    return lines


def _ops_text(row: dict) -> str:
    """A row's operations as ``op0 = mul(3, 4) = 12``, the answer operation marked with ``*``."""
    return "; ".join(
        f"{'*' if k == row.get('answer_op') else ''}op{k} {op['op']}({', '.join(map(str, op['operands']))})"
        f"={op['result']}"
        for k, op in enumerate(row.get("ops") or [])
    )


def ladder_markdown(ladder: dict | None) -> list[str]:
    """The oracle ladder as a Markdown table (empty when no problem has a validated reference)."""
    if not ladder or not any(r["n"] for r in ladder.values()):
        return []
    lines = [
        "",
        "## Oracle ladder",
        "",
        f"The same {next(iter(ladder.values()))['n']} problems (those with a validated reference DAG), one learned "
        "student swapped in per rung; the drop between rungs names the student to improve.",
        "",
        "| rung | inputs | answered correctly | accuracy |",
        "| --- | --- | --- | --- |",
    ]
    for rung, r in ladder.items():
        lines.append(f"| ({rung}) | {r['description']} | {r['correct']}/{r['n']} | {r['accuracy']:.3f} |")
    return lines


def beam_markdown(effect: list[dict] | None) -> list[str]:
    """The step decoder's accuracy and speed against its beam width, as a Markdown table."""
    if not effect:
        return []
    lines = [
        "",
        "## The step decoder's beam",
        "",
        f"All {effect[0]['n']} scored problems, the tagger's units as regions; decoding time only.",
        "",
        "| beams | answered correctly | accuracy | problems / s |",
        "| --- | --- | --- | --- |",
    ]
    for e in effect:
        lines.append(f"| {e['beams']} | {e['correct']}/{e['n']} | {e['accuracy']:.3f} | {e['problems_per_second']} |")
    return lines
