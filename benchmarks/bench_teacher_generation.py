"""Teacher generation on the embedded teacher: ours against a plain ``model.generate``, side by side, in one run.

    python benchmarks/bench_teacher_generation.py [--problems 8] [--max-new-tokens 32] [--repeats 3] [--threads auto]

On the same loaded model and the same prompts, at each thread count asked for (both sides at that count), times

- plain: ``model.generate(**tokenizer(prompt, return_tensors="pt"), max_new_tokens=N, do_sample=False)``, one
  prompt at a time;
- ours, batch 1: :func:`mycelium_datasets.teacher.generate` on one prompt at a time;
- ours, batch 8 (or every prompt, when fewer): one padded batch per 8 prompts;

plain and ours interleaved prompt by prompt (their order alternating between repeats), so a busy machine slows both
alike. Medians over repeats of the seconds for all prompts; the ratios compare seconds (ours / plain) and problems/s
(batch 8 / batch 1). Ours must produce exactly plain's greedy tokens (``same_tokens``). ``--threads`` takes thread
counts, ``auto`` (what our ``generate`` picks here by itself: ``mycelium_datasets.threads``) and ``max`` (torch's own
count; on a busy machine ``auto,max`` takes minutes more); the last line prints the ratios for ``auto``. Writes
benchmarks/results/teacher_generation.json.
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
from mycelium_datasets.threads import busy_fraction, generation_threads

TEACHER = "smollm2-135m-instruct"


def plain_generate(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """The reference: transformers' ``generate`` as a user would call it; the new token ids, end token included."""
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


def ours_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, threads: int) -> list[dict]:
    return generate(model, tokenizer, prompts, max_new_tokens, num_threads=threads)


def timed(fn, *args):
    started = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - started, value


def side_by_side(
    model, tokenizer, prompts: list[str], max_new_tokens: int, repeats: int, batch: int, threads: int
) -> dict:
    """Seconds (medians over repeats, all prompts) of plain, ours at batch 1 and ours at ``batch``, all at
    ``threads`` torch threads."""
    torch.set_num_threads(threads)  # plain generate runs at torch's count; ours is given the same
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    plain_s, ours_s, batch_s, same, tokens = [], [], [], True, 0
    for repeat in range(repeats):
        plain_total = ours_total = 0.0
        tokens = 0
        for prompt in prompts:
            runs = [("plain", plain_generate, (model, tokenizer, prompt, max_new_tokens))]
            runs.append(("ours", ours_generate, (model, tokenizer, [prompt], max_new_tokens, threads)))
            if repeat % 2:
                runs.reverse()
            got = {}
            for name, fn, args in runs:
                got[name] = timed(fn, *args)
            plain_total += got["plain"][0]
            ours_total += got["ours"][0]
            ids = got["plain"][1]
            stop = next((k for k, t in enumerate(ids) if t in eos), len(ids))
            ours = got["ours"][1][0]
            same &= (
                ours["n_tokens"] == stop
                and ours["text"] == tokenizer.decode(ids[:stop], skip_special_tokens=True).strip()
            )
            tokens += ours["n_tokens"]
        plain_s.append(plain_total)
        ours_s.append(ours_total)
        seconds = 0.0
        for i in range(0, len(prompts), batch):
            seconds += timed(ours_generate, model, tokenizer, prompts[i : i + batch], max_new_tokens, threads)[0]
        batch_s.append(seconds)
    plain, ours, batched = (statistics.median(s) for s in (plain_s, ours_s, batch_s))
    return {
        "plain_s": plain,
        "ours_batch1_s": ours,
        f"ours_batch{batch}_s": batched,
        "generated_tokens": tokens,
        "plain_tokens_per_s": tokens / plain,
        "ours_batch1_tokens_per_s": tokens / ours,
        f"ours_batch{batch}_tokens_per_s": tokens / batched,
        "ratio_ours_over_plain_s": ours / plain,
        f"ratio_batch{batch}_over_batch1_problems_per_s": ours / batched,
        "same_tokens": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", default="auto", help="comma-separated: numbers, auto, max")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "teacher_generation.json"))
    args = parser.parse_args()

    own = torch.get_num_threads()
    auto = generation_threads()
    busy = busy_fraction()
    named = {"auto": auto, "max": own}
    counts = list(dict.fromkeys(named[t] if t in named else int(t) for t in args.threads.split(",")))

    started = time.perf_counter()
    model, tokenizer = load_teacher(TEACHER)
    load_s = time.perf_counter() - started
    rows = read_source(ProblemsConfig(size=args.problems, seed=0))
    prompts = [build_prompt(tokenizer, r["problem"], DEFAULT_SYSTEM_PROMPT) for r in rows]
    batch = min(args.batch, len(prompts))
    results = {}
    for threads in counts:
        ours_generate(model, tokenizer, prompts[:2], 4, threads)  # warm-up
        results[threads] = side_by_side(model, tokenizer, prompts, args.max_new_tokens, args.repeats, batch, threads)
        r = results[threads]
        print(
            f"{threads} thread(s): plain {r['plain_s']:.2f} s, ours batch 1 {r['ours_batch1_s']:.2f} s, "
            f"ours batch {batch} {r[f'ours_batch{batch}_s']:.2f} s for {r['generated_tokens']} tokens "
            f"(medians of {args.repeats}); same tokens as plain: {r['same_tokens']}",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "teacher_generation",
                "teacher": TEACHER,
                "problems": args.problems,
                "max_new_tokens": args.max_new_tokens,
                "repeats": args.repeats,
                "batch": batch,
                "torch_own_threads": own,
                "auto_threads": auto,
                "cpu_busy_fraction_at_start": busy,
                "model_load_s": load_s,
                "results_by_threads": results,
            },
            indent=2,
        )
    )
    if auto in results:
        r = results[auto]
        print(
            f"auto = {auto} thread(s): ours/plain seconds at batch 1: {r['ratio_ours_over_plain_s']:.2f}x; "
            f"problems/s batch {batch}/batch 1: {r[f'ratio_batch{batch}_over_batch1_problems_per_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
