"""Segmentation quality of every segmenter against random boundaries at the same count, on real solutions.

    python benchmarks/bench_segmentation.py [--gsm8k 100] [--math 40]

GSM8K train: each calculator annotation is one operation; its extent is the visible equation around it. MATH-500
dev: each LaTeX equation (math containing "=") is one operation. For each segmenter: boundaries per token, "ops
separate & intact" (over solutions with >= 2 operations: no two operations in one span and no boundary inside an
operation's extent), the share of spans holding exactly one operation, and line-start F1 (±2 tokens). Attention is
captured once per solution from the embedded teacher (chat template, reference solution as the assistant turn).
Writes benchmarks/results/segmentation.json and prints a Markdown table; the last line compares the default
segmenter with the sentence baseline.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from mycelium_datasets.cot_traces import clean_reference
from mycelium_datasets.jsd_spans import DEFAULT_SEGMENTER, load_capture_model, trace_attention
from mycelium_datasets.problems import ProblemsConfig, read_source
from mycelium_datasets.segment import (
    SegmenterConfig,
    boundaries_to_spans,
    equation_extents,
    jsd_curve,
    segment,
)
from mycelium_datasets.teacher import DEFAULT_SYSTEM_PROMPT, build_prompt

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETTINGS = {
    "jsd (field guide: SG 5/2, any peak)": ("jsd", SegmenterConfig()),
    "jsd, prominence 2 std": ("jsd", SegmenterConfig(prominence_std=2.0)),
    "sentence": ("sentence", SegmenterConfig()),
    "jsd_clause (sentences, then JSD between equations)": ("jsd_clause", SegmenterConfig()),
    "ablation: jsd_clause with the first word gap instead of JSD": (
        "jsd_clause",
        SegmenterConfig(between_equations="first"),
    ),
}
_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.DOTALL)


def gsm8k_ops(cot: str, annotations: list[dict]) -> list[tuple[int, int]]:
    extents = equation_extents(cot)
    ops = []
    for a in annotations:
        pos = a["char_pos"]
        inside = [e for e in extents if e[0] <= pos <= e[1]]
        ops.append(inside[0] if inside else (pos, min(len(cot), pos + max(1, len(a["result"])))))
    return ops


def math_ops(cot: str) -> list[tuple[int, int]]:
    return [m.span() for m in _MATH.finditer(cot) if "=" in m.group(0)]


def score(cot: str, n_tokens: int, offsets, spans: list[dict], ops: list[tuple[int, int]]) -> dict:
    cuts = [s["char_start"] for s in spans[1:]]
    span_of = [
        next(i for i, s in enumerate(spans) if s["char_start"] <= a < s["char_end"] or i == len(spans) - 1)
        for a, _ in ops
    ]
    per_span = np.bincount(span_of, minlength=len(spans)) if ops else np.zeros(len(spans), int)
    intact = all(not any(a < c < b for c in cuts) for a, b in ops)
    separate = len(set(span_of)) == len(span_of)
    # line starts as token indices vs predicted span-start tokens
    starts = [o[0] for o in offsets]
    line_tokens = {next((i for i, s in enumerate(starts) if s >= m.end()), n_tokens) for m in re.finditer(r"\n", cot)}
    line_tokens = {t for t in line_tokens if 0 < t < n_tokens}
    predicted = {s["token_start"] for s in spans[1:]}
    tp_p = sum(any(abs(p - t) <= 2 for t in line_tokens) for p in predicted)
    tp_r = sum(any(abs(p - t) <= 2 for p in predicted) for t in line_tokens)
    return {
        "boundaries": len(cuts),
        "tokens": n_tokens,
        "multi_op": len(ops) >= 2,
        "separate_intact": intact and separate,
        "spans": len(spans),
        "spans_one_op": int((per_span == 1).sum()),
        "precision": (tp_p, len(predicted)),
        "recall": (tp_r, len(line_tokens)),
    }


def summarize(scores: list[dict]) -> dict:
    multi = [s for s in scores if s["multi_op"]]
    p = sum(s["precision"][0] for s in scores) / max(1, sum(s["precision"][1] for s in scores))
    r = sum(s["recall"][0] for s in scores) / max(1, sum(s["recall"][1] for s in scores))
    return {
        "boundaries_per_token": sum(s["boundaries"] for s in scores) / max(1, sum(s["tokens"] for s in scores)),
        "separate_intact": sum(s["separate_intact"] for s in multi) / max(1, len(multi)),
        "spans_one_op": sum(s["spans_one_op"] for s in scores) / max(1, sum(s["spans"] for s in scores)),
        "line_start_f1": 2 * p * r / (p + r) if p + r else 0.0,
        "n_multi_op": len(multi),
    }


def evaluate(items, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    table = {}
    for name, (method, config) in SETTINGS.items():
        chosen, random_ = [], []
        for it in items:
            spans, _ = segment(method, it["cot"], it["offsets"], it["jsd"], config)
            chosen.append(score(it["cot"], len(it["offsets"]), it["offsets"], spans, it["ops"]))
            k = len(spans) - 1
            picks = rng.choice(np.arange(1, len(it["offsets"])), size=min(k, len(it["offsets"]) - 1), replace=False)
            rspans = boundaries_to_spans(it["cot"], it["offsets"], sorted(picks.tolist()))
            random_.append(score(it["cot"], len(it["offsets"]), it["offsets"], rspans, it["ops"]))
        table[name] = {"segmenter": summarize(chosen), "random_same_count": summarize(random_)}
    return table


def collect(rows, model, tokenizer, ops_fn) -> list[dict]:
    items = []
    for r in rows:
        cot, annotations = clean_reference(r["solution"])
        prompt = build_prompt(tokenizer, r["problem"], DEFAULT_SYSTEM_PROMPT)
        captured = trace_attention(model, tokenizer, prompt, cot, None, 256)
        items.append(
            {
                "cot": cot,
                "offsets": captured["cot_offsets"],
                "jsd": jsd_curve(captured["rows"], captured["n_prompt"]),
                "ops": ops_fn(cot, annotations),
            }
        )
    return items


def print_table(title: str, table: dict) -> None:
    print(f"\n### {title}\n")
    print("| segmenter | boundaries/token | ops separate & intact | spans with exactly 1 op | line-start F1 |")
    print("| --- | --- | --- | --- | --- |")
    for name, res in table.items():
        s, r = res["segmenter"], res["random_same_count"]
        print(
            f"| {name} | {s['boundaries_per_token']:.3f} "
            f"| {s['separate_intact']:.2f} (random {r['separate_intact']:.2f}) "
            f"| {s['spans_one_op']:.2f} (random {r['spans_one_op']:.2f}) | {s['line_start_f1']:.2f} "
            f"(random {r['line_start_f1']:.2f}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gsm8k", type=int, default=100)
    parser.add_argument("--math", type=int, default=40)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "segmentation.json"))
    args = parser.parse_args()
    model, tokenizer = load_capture_model("smollm2-135m-instruct")
    results = {}
    started = time.time()
    gsm = DATA / "gsm8k_train.jsonl"
    if gsm.is_file():
        rows = [r for r in read_source(ProblemsConfig(source=str(gsm), limit=args.gsm8k)) if r["solution"]]
        results["gsm8k_train"] = evaluate(collect(rows, model, tokenizer, gsm8k_ops))
        print_table(f"GSM8K train, first {len(rows)} solutions (ops = calculator annotations)", results["gsm8k_train"])
    math = DATA / "math500_dev.jsonl"
    if math.is_file() and args.math:
        rows = [r for r in read_source(ProblemsConfig(source=str(math), limit=args.math)) if r["solution"]]
        results["math500_dev"] = evaluate(collect(rows, model, tokenizer, lambda cot, _: math_ops(cot)))
        print_table(f"MATH-500 dev, first {len(rows)} solutions (ops = LaTeX equations)", results["math500_dev"])
    if not results:
        raise SystemExit("../shared/data is absent: this benchmark needs the GSM8K / MATH files")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "segmentation",
                "seconds": round(time.time() - started, 1),
                "default": DEFAULT_SEGMENTER,
                "results": results,
            },
            indent=2,
        )
    )
    key = "gsm8k_train" if "gsm8k_train" in results else "math500_dev"
    default = next(k for k, (m, _) in SETTINGS.items() if m == DEFAULT_SEGMENTER)
    default = results[key][default]["segmenter"]
    baseline = results[key]["sentence"]["segmenter"]
    print(
        f"\n{key}: default {DEFAULT_SEGMENTER} separate&intact {default['separate_intact']:.2f} vs sentence "
        f"{baseline['separate_intact']:.2f}; spans with 1 op {default['spans_one_op']:.2f} vs "
        f"{baseline['spans_one_op']:.2f}; ratio {default['spans_one_op'] / max(1e-9, baseline['spans_one_op']):.2f}x"
    )


if __name__ == "__main__":
    main()
