"""Step decoder: one teacher-forced training step (forward + backward) and one beam search (beam 8, every problem
of the batch) against the size of its constant vocabulary, side by side in one run.

    python benchmarks/bench_decoder.py [--batch 16] [--repeats 5] [--constants 0,43,114]

Each constant is a node that every step scores against every other node (an ``(N, N, state)`` tensor per step), so
the step's cost grows with the square of quantities + constants + results. The same real batch (gsm_symbolic
problems, the embedded MiniLM backbone, two-step programs over each problem's first quantities) is timed with
vocabularies of each size; the medians and their ratio to the smallest go to benchmarks/results/decoder.json. The
models are untrained (seeded), so the searches run to their longest programs: the worst case of a decode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer

from mycelium_datasets.defaults import resolve_backbone
from mycelium_datasets.numbers import quantities
from mycelium_datasets.problems import ProblemsConfig, read_source
from mycelium_models.modeling_mycelium import POINTER_CODE, STEP_OPS, MyceliumStepDecoder, MyceliumStepDecoderConfig
from mycelium_models.steps import StepCollator, encode, node_values, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--constants", default="0,43,114", help="vocabulary sizes to compare")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "decoder.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    backbone = resolve_backbone()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    problems = [r["problem"] for r in read_source(ProblemsConfig(size=args.batch, seed=7))]
    add, mul = STEP_OPS.index("add"), STEP_OPS.index("mul")
    result = 2 * POINTER_CODE
    features = []
    for problem in problems:
        found = quantities(problem)
        steps = [(0, 1, add), (result, 2 if len(found) > 2 else 0, mul)] if len(found) >= 2 else []
        features.append(encode(tokenizer, problem, found, None, 256, steps, 64))
    batch = StepCollator(tokenizer.pad_token_id)(features)
    backbone_config = AutoConfig.from_pretrained(backbone).to_dict()
    results = {"batch": args.batch, "tokens": int(batch["input_ids"].shape[1]), "seconds": {}, "search_seconds": {}}
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    for size in (int(s) for s in args.constants.split(",")):
        config = MyceliumStepDecoderConfig(backbone_config=backbone_config, constants=[str(k) for k in range(size)])
        model = MyceliumStepDecoder(config).train()
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            model(**batch).loss.backward()
            times.append(time.perf_counter() - started)
            model.zero_grad()
        results["seconds"][size] = statistics.median(times)
        model.eval()
        n_q = inputs["quantity_spans"].shape[1]
        values = [node_values(quantities(p), config.constants, n_q) for p in problems]
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            search(model, inputs, values, problems, num_beams=8)
            times.append(time.perf_counter() - started)
        results["search_seconds"][size] = statistics.median(times)
        print(
            f"{size} constants: {results['seconds'][size]:.2f} s a training step, "
            f"{results['search_seconds'][size]:.2f} s a beam-8 search of {args.batch} problems "
            f"(medians of {args.repeats})"
        )
    smallest = min(results["seconds"])
    results["ratio_to_smallest"] = {k: v / results["seconds"][smallest] for k, v in results["seconds"].items()}
    results["search_ratio_to_smallest"] = {
        k: v / results["search_seconds"][smallest] for k, v in results["search_seconds"].items()
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("ratio to the smallest vocabulary:", {k: round(v, 2) for k, v in results["ratio_to_smallest"].items()})


if __name__ == "__main__":
    main()
