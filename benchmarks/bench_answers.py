"""Answer extraction + verification throughput (answers/s) on real CoTs, in one run.

    python benchmarks/bench_answers.py [--limit 2000] [--repeats 3]

Measures, side by side: extraction alone, extraction + verification of GSM8K reference solutions (plain numbers,
exact path), and of MATH-500 solutions (LaTeX, math-verify in the worker process). Needs ../shared/data; falls back
to gsm_symbolic problems when it is absent. MATH golds are written as inline math (``$...$``) so that the extracted
answer never matches verbatim. Last line: the ratio of the exact path to the math-verify path.
Writes benchmarks/results/answers.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from mycelium_datasets.answers import answers_match, extract_answer
from mycelium_datasets.cot_traces import clean_reference
from mycelium_datasets.problems import ProblemsConfig, read_source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pairs_from(source: str, limit: int) -> list[tuple[str, str]]:
    rows = read_source(
        ProblemsConfig(source=source, limit=limit)
        if source.endswith(".jsonl")
        else ProblemsConfig(source=source, size=limit)
    )
    return [(clean_reference(r["solution"])[0], r["answer"]) for r in rows if r["solution"] and r["answer"]]


def timed(fn, items, repeats):
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            fn(*item)
        rates.append(len(items) / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "answers.json"))
    args = parser.parse_args()

    gsm = DATA / "gsm8k_train.jsonl"
    math = DATA / "math500_dev.jsonl"
    plain = pairs_from(str(gsm) if gsm.is_file() else "gsm_symbolic", args.limit)
    # Gold written as inline math ($...$), so that a verbatim match never short-cuts the math-verify path.
    latex = [(cot, f"${gold}$") for cot, gold in pairs_from(str(math), args.limit)] if math.is_file() else []
    answers_match("1/2", "\\frac{1}{2}")  # start the verification worker outside the timings

    def extract_only(cot, gold):
        extract_answer(cot)

    def extract_and_verify(cot, gold):
        answers_match(extract_answer(cot)[0], gold)

    results = {
        "extract_only_per_s": timed(extract_only, plain, args.repeats),
        "plain_extract_verify_per_s": timed(extract_and_verify, plain, args.repeats),
    }
    if latex:
        results["latex_extract_verify_per_s"] = timed(extract_and_verify, latex, args.repeats)
        correct = sum(bool(answers_match(extract_answer(c)[0], g).match) for c, g in latex)
        results["latex_agreement"] = correct / len(latex)
    for key, value in results.items():
        print(f"{key}: {value:,.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    ratio = results["plain_extract_verify_per_s"] / results.get("latex_extract_verify_per_s", float("nan"))
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "answers",
                "n_plain": len(plain),
                "n_latex": len(latex),
                "repeats": args.repeats,
                "results": results,
                "ratio_plain_over_latex": ratio,
            },
            indent=2,
        )
    )
    print(f"ratio answers/s plain-number path / math-verify path: {ratio:.1f}x")


if __name__ == "__main__":
    main()
