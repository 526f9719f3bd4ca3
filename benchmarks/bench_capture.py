"""Attention capture cost on the embedded teacher, measured side by side in one run.

    python benchmarks/bench_capture.py [--lengths 256 1024 2048] [--repeats 3]

For each total length T (prompt = T/4, CoT = the rest, random token ids): a plain SDPA forward vs the teacher-forced
capture of every layer's head-mean CoT rows (goal: <= 1.10x at T <= 512, <= 1.5x at 2048); at the shortest T, a
token-by-token KV-cache loop with eager `output_attentions` (what capturing during generation costs) vs the
teacher-forced capture (expect >= 15x); and the attention bytes kept vs those of eager `output_attentions`
(all layers x heads x T x T; goal <= 1/100). Medians over repeats. Writes benchmarks/results/capture.json; the last
line prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mycelium_datasets.capture import capture_cot_attention
from mycelium_datasets.defaults import resolve_teacher


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "capture.json"))
    args = parser.parse_args()

    model = AutoModelForCausalLM.from_pretrained(resolve_teacher(), dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    config = model.config
    generator = torch.Generator().manual_seed(0)
    results = {"lengths": {}}
    for total in args.lengths:
        ids = torch.randint(0, config.vocab_size, (1, total), generator=generator)
        prompt = total // 4

        def plain(ids=ids):
            with torch.inference_mode():
                model(input_ids=ids, use_cache=False)

        def capture(ids=ids, prompt=prompt):
            capture_cot_attention(model, ids, prompt)

        plain(), capture()  # warm-up
        # interleaved, so that a noisy neighbour slows both alike
        pairs = [(median_time(plain, 1), median_time(capture, 1)) for _ in range(args.repeats)]
        t_plain, t_capture = statistics.median(p for p, _ in pairs), statistics.median(c for _, c in pairs)
        kept = (total - prompt) * total * 4
        eager = config.num_hidden_layers * config.num_attention_heads * total * total * 4
        results["lengths"][total] = {
            "sdpa_s": t_plain,
            "capture_s": t_capture,
            "capture_over_sdpa": t_capture / t_plain,
            "bytes_kept": kept,
            "bytes_eager_output_attentions": eager,
            "bytes_ratio": kept / eager,
        }
        print(
            f"T={total}: sdpa {t_plain:.3f}s, capture {t_capture:.3f}s -> {t_capture / t_plain:.2f}x; "
            f"bytes kept {kept / 1e6:.1f} MB vs eager {eager / 1e6:.0f} MB -> 1/{eager / kept:.0f}"
        )

    short = min(args.lengths)
    ids = torch.randint(0, config.vocab_size, (1, short), generator=generator)
    prompt = short // 4

    def token_by_token():
        model.set_attn_implementation("eager")
        with torch.inference_mode():
            cache = model(input_ids=ids[:, :prompt], use_cache=True).past_key_values
            for i in range(prompt, short):
                out = model(input_ids=ids[:, i : i + 1], past_key_values=cache, use_cache=True, output_attentions=True)
                cache = out.past_key_values
                torch.stack([a[0, :, 0, :].mean(0) for a in out.attentions])
        model.set_attn_implementation("sdpa")

    t_loop = median_time(token_by_token, max(1, args.repeats - 2))
    t_forced = results["lengths"][short]["capture_s"]
    results["token_by_token"] = {
        "length": short,
        "loop_s": t_loop,
        "teacher_forced_s": t_forced,
        "ratio": t_loop / t_forced,
    }
    print(f"T={short}: token-by-token {t_loop:.2f}s vs teacher-forced {t_forced:.3f}s -> {t_loop / t_forced:.1f}x")
    results["torch_threads"] = torch.get_num_threads()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    ratios = ", ".join(f"T={t}: {v['capture_over_sdpa']:.2f}x" for t, v in results["lengths"].items())
    worst_bytes = max(v["bytes_ratio"] for v in results["lengths"].values())
    print(
        f"capture/sdpa {ratios}; token-by-token/teacher-forced {t_loop / t_forced:.1f}x; "
        f"bytes kept/eager <= 1/{1 / worst_bytes:.0f}"
    )


if __name__ == "__main__":
    main()
