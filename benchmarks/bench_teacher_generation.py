"""Teacher generation throughput on the embedded teacher: batch 1 vs batch 8, on the same problems, in one run.

    python benchmarks/bench_teacher_generation.py [--problems 8] [--max-new-tokens 32] [--repeats 3]

Prints problems/s and generated tokens/s per batch size (medians over repeats) and, on its last line, the ratio
batch 8 / batch 1. Writes benchmarks/results/teacher_generation.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mycelium_datasets.problems import ProblemsConfig, read_source
from mycelium_datasets.teacher import DEFAULT_SYSTEM_PROMPT, build_prompt, generate, load_teacher


def run(model, tokenizer, prompts, batch_size, max_new_tokens):
    started = time.perf_counter()
    tokens = 0
    for i in range(0, len(prompts), batch_size):
        for g in generate(model, tokenizer, prompts[i : i + batch_size], max_new_tokens):
            tokens += g["n_tokens"]
    seconds = time.perf_counter() - started
    return len(prompts) / seconds, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "teacher_generation.json"))
    args = parser.parse_args()

    model, tokenizer = load_teacher("smollm2-135m-instruct")
    rows = read_source(ProblemsConfig(size=args.problems, seed=0))
    prompts = [build_prompt(tokenizer, r["problem"], DEFAULT_SYSTEM_PROMPT) for r in rows]
    run(model, tokenizer, prompts[:2], 2, 4)  # warm-up
    results = {}
    for batch_size in (1, 8):
        samples = [run(model, tokenizer, prompts, batch_size, args.max_new_tokens) for _ in range(args.repeats)]
        results[batch_size] = {
            "problems_per_s": statistics.median(s[0] for s in samples),
            "tokens_per_s": statistics.median(s[1] for s in samples),
        }
        print(
            f"batch {batch_size}: {results[batch_size]['problems_per_s']:.3f} problems/s, "
            f"{results[batch_size]['tokens_per_s']:.1f} tokens/s (median of {args.repeats})"
        )
    ratio = results[8]["problems_per_s"] / results[1]["problems_per_s"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "teacher_generation",
                "teacher": "smollm2-135m-instruct",
                "problems": args.problems,
                "max_new_tokens": args.max_new_tokens,
                "repeats": args.repeats,
                "torch_threads": torch.get_num_threads(),
                "results": results,
                "ratio_batch8_over_batch1": ratio,
            },
            indent=2,
        )
    )
    print(f"ratio problems/s batch8/batch1: {ratio:.2f}x")


if __name__ == "__main__":
    main()
