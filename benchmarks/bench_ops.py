"""Operation parsing and execution validation on reference CoTs, and the CPU stages' throughput.

    python benchmarks/bench_ops.py [--gsm-symbolic 300] [--gsm8k 1000] [--math 250] [--throughput 100]
                                   [--tier3 RUN/models]

For each source: the reference solution is the CoT, cut into sentence spans; parser coverage = share of spans that
write an equation (an "=" next to a digit) from which at least one operation is parsed; validated yield = share of
problems whose operation DAG executes to the gold answer. For gsm_symbolic, the recall of the true intermediate
values (`metadata.variables`, numeric ones that are not stated in the problem) among the operations' results
(a variable stored in percent units, e.g. 25 for 25%, also counts when 0.25 is a result).
With ``--tier3`` (a models folder or a released solver), a problem tiers 1-2 do not validate is read again with
parse tier 3, the solver's operation classifier as the fallback, and, side by side, with no classifier at all (each
single operation tried in a fixed order, no sequence of two): what the classifier adds.
Throughput: problems/s through clause_regions -> op_pairs -> io_tags -> op_classes on a run folder built up to
iaf_maps. Writes benchmarks/results/ops.json; the last line prints the yields.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from mycelium_datasets.answers import answers_match
from mycelium_datasets.arith import ParseError, format_value
from mycelium_datasets.cot_traces import clean_reference
from mycelium_datasets.numbers import problem_numbers
from mycelium_datasets.op_graph import executed_answer, ops_for_trace, validate_trace
from mycelium_datasets.problems import ProblemsConfig, read_source
from mycelium_datasets.segment import segment

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_EQUATION_STEP = re.compile(r"\d\s*=|=\s*[$€£]?\s*-?\d|\\frac|\\cdot|\\times")


def offsets_for(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def gold_kind(gold: str) -> str:
    """``rational``, ``irrational`` (a real number that is not rational: radicals, pi) or ``other`` (tuples,
    intervals, expressions with letters, text), read with math-verify (the benchmark's own reading, not the DAG's)."""
    from math_verify import parse

    parsed = [p for p in parse(f"${gold}$") if hasattr(p, "free_symbols")]
    if not parsed or parsed[0].free_symbols or not getattr(parsed[0], "is_number", False):
        return "other"
    value = parsed[0]
    return "rational" if value.is_rational else "irrational" if value.is_real else "other"


def _share(counts: dict) -> dict:
    return {k: {"problems": n, "validated": v, "yield": v / max(1, n)} for k, (n, v) in sorted(counts.items())}


class NoRanking:
    """Tier 3 without a classifier: no ranked sequences, so only single operations, in a fixed order."""

    def rank_operations(self, texts, k=3):
        return [[] for _ in texts]


def evaluate_rows(rows: list[dict], variables: bool = False, breakdown: bool = False, fallback=None) -> dict:
    steps = parsed_steps = validated = recalled = n_values = 0
    tier3_without_classifier = 0
    with_systems = 0  # validated only with systems of two linear equations
    failures = []
    parse_seconds = 0.0
    tiers: collections.Counter = collections.Counter()  # validated problems that use a tier (highest tier used)
    op_tiers: collections.Counter = collections.Counter()  # ops of validated problems by tier
    groups: dict[str, dict] = collections.defaultdict(dict)  # breakdown name -> key -> [problems, validated]
    statuses: collections.Counter = collections.Counter()
    for r in rows:
        cot, _ = clean_reference(r["solution"])
        spans, _ = segment("sentence", cot, offsets_for(cot), None)
        started = time.perf_counter()
        ops, _ = ops_for_trace(r["problem"], spans, [[] for _ in spans])
        try:
            value = executed_answer(ops, r["problem"]) if ops else None
            error = None
        except ParseError as exc:
            value, error = None, str(exc)
        parse_seconds += time.perf_counter() - started
        with_ops = {op["span_index"] for op in ops}
        for i, s in enumerate(spans):
            if _EQUATION_STEP.search(s["text"]):
                steps += 1
                parsed_steps += i in with_ops
        ok = value is not None and bool(answers_match(format_value(value), r["answer"]).match)
        if not ok:  # read again with systems of two linear equations (as op_pairs does)
            started = time.perf_counter()
            system_ops, _ = ops_for_trace(r["problem"], spans, [[] for _ in spans], systems=True)
            try:
                system_value = executed_answer(system_ops, r["problem"]) if system_ops else None
            except ParseError:
                system_value = None
            parse_seconds += time.perf_counter() - started
            if any(op["op"] == "solve2" for op in system_ops) and system_value is not None:
                if answers_match(format_value(system_value), r["answer"]).match:
                    ok, ops, value, error = True, system_ops, system_value, None
                    with_systems += 1
        if not ok and fallback is not None:
            regions = [[] for _ in spans]
            tier3 = validate_trace(r["problem"], r["answer"], spans, regions, fallback=fallback)
            if tier3["validated"]:
                ok, ops, value, error = True, tier3["ops"], tier3["executed_answer"], None
            tier3_without_classifier += validate_trace(
                r["problem"], r["answer"], spans, regions, fallback=NoRanking()
            )["validated"]
        validated += ok
        status = "validated" if ok else "no_ops" if not ops else "execution_error" if error else "wrong_answer"
        statuses[status] += 1
        if ok:
            tiers[max(op["parse_tier"] for op in ops)] += 1
            op_tiers.update(op["parse_tier"] for op in ops)
        if breakdown:
            keys = {"gold_kind": gold_kind(r["answer"])}
            meta = json.loads(r.get("meta_json") or "{}")  # MATH's subject and level, when the file carries them
            keys.update({k: str(meta[k]) for k in ("subject", "level") if meta.get(k) is not None})
            for name, key in keys.items():
                n, v = groups[name].get(key, (0, 0))
                groups[name][key] = (n + 1, v + ok)
        if not ok and len(failures) < 5:
            failures.append(
                {
                    "id": r["id"],
                    "executed": None if value is None else format_value(value),
                    "gold": r["answer"],
                    "cot": cot[:300],
                }
            )
        if variables:
            stated = {v for v, _, _ in problem_numbers(r["problem"])}
            results = {Fraction(op["result"]) for op in ops}
            meta = json.loads(r["meta_json"]).get("variables", {})
            for v in meta.values():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                v = Fraction(str(v))
                if v in stated:
                    continue
                n_values += 1
                # percentages may be stored in percent units (prob_two_in_row: 25 for 25%)
                recalled += v in results or v / 100 in results
    out = {
        "problems": len(rows),
        "equation_steps": steps,
        "parser_coverage": parsed_steps / max(1, steps),
        "validated_yield": validated / max(1, len(rows)),
        "op_seconds": parse_seconds,
        "op_problems_per_s": len(rows) / max(parse_seconds, 1e-9),
        "status": dict(statuses.most_common()),
        "validated_with_systems": with_systems,
        "validated_by_highest_tier": {str(k): v for k, v in sorted(tiers.items())},
        "ops_of_validated_by_tier": {str(k): v for k, v in sorted(op_tiers.items())},
        "failures": failures,
    }
    if fallback is not None:
        out["validated_with_tier3_no_classifier"] = statuses["validated"] - tiers[3] + tier3_without_classifier
    for name, counts in groups.items():
        out[f"by_{name}"] = _share(counts)
    if variables:
        out["intermediate_values"] = n_values
        out["intermediate_recall"] = recalled / max(1, n_values)
    return out


def throughput(n: int) -> dict:
    from mycelium_datasets.builders import BUILDERS
    from mycelium_run.job import split_options

    configs = split_options({"size": n, "test_fraction": 0.0})
    with tempfile.TemporaryDirectory() as out:
        for name in ("problems", "cot_traces", "jsd_spans", "iaf_maps"):
            BUILDERS[name](out, configs[name]).build()
        started = time.perf_counter()
        for name in ("clause_regions", "op_pairs", "io_tags", "op_classes"):
            BUILDERS[name](out, configs[name]).build()
        seconds = time.perf_counter() - started
    return {"problems": n, "seconds": seconds, "problems_per_s": n / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gsm-symbolic", type=int, default=300)
    parser.add_argument("--gsm8k", type=int, default=1000)
    parser.add_argument("--math", type=int, default=250)
    parser.add_argument("--throughput", type=int, default=100)
    parser.add_argument("--data", default=str(DATA), help="folder with gsm8k_train.jsonl and math500_dev.jsonl")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ops.json"))
    parser.add_argument("--tier3", default=None, help="a models folder (RUN/models) or solver repo id: tier 3 on")
    args = parser.parse_args()
    fallback = None
    if args.tier3:
        from mycelium_models.solver import MyceliumSolver

        fallback = MyceliumSolver.from_pretrained(args.tier3, device="cpu")
    results = {}
    if args.tier3:  # which students read tier 3: the run folder's name (no machine path), or the repo id
        models = Path(args.tier3)
        results["tier3_models"] = f"{models.parent.name}/{models.name}" if models.is_dir() else args.tier3
    data = Path(args.data)
    # the parser imports sympy once per process, at the first irrational value (about 1 s): not per-problem time
    import sympy  # noqa: F401

    rows = [r for r in read_source(ProblemsConfig(size=args.gsm_symbolic, seed=0)) if r["solution"]]
    results["gsm_symbolic"] = evaluate_rows(rows, variables=True, fallback=fallback)
    if (data / "gsm8k_train.jsonl").is_file():
        rows = [r for r in read_source(ProblemsConfig(source=str(data / "gsm8k_train.jsonl"), limit=args.gsm8k))]
        results["gsm8k_train"] = evaluate_rows(rows, fallback=fallback)
    if (data / "math500_dev.jsonl").is_file():
        rows = [r for r in read_source(ProblemsConfig(source=str(data / "math500_dev.jsonl"), limit=args.math))]
        results["math500_dev"] = evaluate_rows(rows, breakdown=True, fallback=fallback)
    for name, res in [(k, v) for k, v in results.items() if isinstance(v, dict)]:
        extra = f", intermediate-value recall {res['intermediate_recall']:.3f}" if "intermediate_recall" in res else ""
        print(
            f"{name}: {res['problems']} problems, parser coverage {res['parser_coverage']:.3f} of "
            f"{res['equation_steps']} equation steps, validated yield {res['validated_yield']:.3f}{extra}; "
            f"op parsing + execution {res['op_problems_per_s']:.0f} problems/s; validated by highest tier "
            f"{res['validated_by_highest_tier']}; status {res['status']}"
        )
        print(f"  validated only with systems of two linear equations: {res['validated_with_systems']}")
        if "validated_with_tier3_no_classifier" in res:
            alone = res["validated_with_tier3_no_classifier"]
            print(f"  validated with tier 3 without the classifier (single operations only): {alone}")
        for key in [k for k in res if k.startswith("by_")]:
            print(f"  {key}: " + ", ".join(f"{g} {c['validated']}/{c['problems']}" for g, c in res[key].items()))
    if args.throughput:
        results["throughput"] = throughput(args.throughput)
        print(f"CPU stages (clause_regions -> op_classes): {results['throughput']['problems_per_s']:.1f} problems/s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        "validated yield: "
        + ", ".join(
            f"{k} {v['validated_yield']:.3f}"
            for k, v in results.items()
            if isinstance(v, dict) and "validated_yield" in v
        )
    )


if __name__ == "__main__":
    main()
