"""Students: no-CoT solver throughput vs the embedded teacher's CoT generation on the same problems, and training
throughput of the students, in one run.

    python benchmarks/bench_students.py [--problems 48] [--teacher-problems 8] [--max-new-tokens 512]

Builds a small run folder (gsm_symbolic, embedded defaults), trains the three students (2 epochs each,
Trainer's train_samples_per_second), then times MyceliumSolver.solve on the test problems (batch of all: the step
decoder's executing beam at its trained width; also greedy (beam 1), the demoted chain ``solve_chain``, and the
tagger alone) against
batched teacher generation (batch 8, greedy, max_new_tokens) on the first of those problems. Writes
benchmarks/results/students.json; the last line prints the solver/teacher ratio (goal >= 300x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from transformers import TrainingArguments

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.problems import ProblemsConfig, read_source
from mycelium_datasets.teacher import DEFAULT_SYSTEM_PROMPT, build_prompt, generate, load_teacher
from mycelium_models.solver import MyceliumSolver
from mycelium_models.students import STUDENTS
from mycelium_models.train import StudentTrainingArguments, train
from mycelium_run.job import split_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=80, help="gsm_symbolic problems in the training run")
    parser.add_argument("--problems", type=int, default=48, help="problems the solver answers")
    parser.add_argument("--teacher-problems", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512, help="the cot_traces default")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "students.json"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as run:
        configs = split_options({"size": args.size})
        for name in BUILDERS:
            BUILDERS[name](run, configs[name]).build()
        for kind in STUDENTS:
            training = TrainingArguments(
                output_dir=f"{run}/ckpt-{kind}",
                num_train_epochs=2,
                learning_rate=1e-4,
                per_device_train_batch_size=16,
                report_to="none",
                seed=0,
                use_cpu=True,
            )
            started = time.perf_counter()
            metrics = train(kind, StudentTrainingArguments(run_dir=run), training)
            results[f"{kind}_training"] = {"seconds": time.perf_counter() - started, "eval": metrics}
        history = json.loads((Path(run) / "models" / "tagger" / "metrics.json").read_text())
        results["tagger_eval"] = history
        solver = MyceliumSolver.from_pretrained(Path(run) / "models", device="cpu")
        problems = [r["problem"] for r in read_source(ProblemsConfig(size=args.problems, seed=123))]
        solver.solve(problems[:4])  # warm-up

        def rate(call) -> float:
            times = []
            for _ in range(3):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            return len(problems) / statistics.median(times)

        beams = solver.decoder.config.program_beams
        solver_rate = rate(lambda: solver.solve(problems))
        results["solver_greedy_problems_per_s"] = rate(lambda: solver.solve_with_decoder(problems, num_beams=1))
        results["chain_problems_per_s"] = rate(lambda: solver.solve_chain(problems))
        results["tagger_only_problems_per_s"] = rate(lambda: solver.units(problems))
        model, tokenizer = load_teacher("smollm2-135m-instruct")
        prompts = [build_prompt(tokenizer, p, DEFAULT_SYSTEM_PROMPT) for p in problems[: args.teacher_problems]]
        started = time.perf_counter()
        generated = generate(model, tokenizer, prompts, args.max_new_tokens)
        teacher_rate = len(prompts) / (time.perf_counter() - started)
    results["solver_problems_per_s"] = solver_rate
    results["teacher_problems_per_s"] = teacher_rate
    results["teacher_tokens"] = [g["n_tokens"] for g in generated]
    results["ratio"] = solver_rate / teacher_rate
    for kind in STUDENTS:
        print(f"{kind}: {results[f'{kind}_training']['seconds']:.1f}s for 2 epochs")
    print(
        f"solver {solver_rate:.1f} problems/s (decoder beam {beams}; greedy "
        f"{results['solver_greedy_problems_per_s']:.1f}; the chain {results['chain_problems_per_s']:.1f}; "
        "the tagger alone "
        f"{results['tagger_only_problems_per_s']:.1f}); teacher CoT {teacher_rate:.3f} problems/s "
        f"(batch 8, up to {args.max_new_tokens} new tokens)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"ratio solver/teacher problems/s: {results['ratio']:.0f}x")


if __name__ == "__main__":
    main()
