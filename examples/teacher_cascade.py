"""A teacher cascade: the embedded teacher writes CoTs, and a second teacher re-solves what it got wrong.

    python examples/teacher_cascade.py [OUT_DIR]

On real hardware pass Hub ids instead, e.g. teachers=["Qwen/Qwen2.5-Math-7B-Instruct", "Qwen/Qwen2.5-72B-Instruct"],
and start it with `accelerate launch` to shard the problems over GPUs (each process writes its own parts).
"""

import sys

from mycelium_datasets.builders import CotTracesBuilder, ProblemsBuilder
from mycelium_datasets.cot_traces import CotTracesConfig
from mycelium_datasets.problems import ProblemsConfig


def main(out_dir: str = "runs/cascade") -> None:
    ProblemsBuilder(out_dir, ProblemsConfig(size=6)).build()
    config = CotTracesConfig(
        cot_source="teacher",
        teachers=["smollm2-135m-instruct", "smollm2-135m-instruct"],  # replace the second with a stronger model
        max_new_tokens=192,
        batch_size=6,
    )
    traces = CotTracesBuilder(out_dir, config).build()
    if traces is None:  # a non-main process of a distributed launch
        return
    for row in traces["train"]:
        tries = " -> ".join(f"{a['teacher']}:{a['cot_answer']}({a['correct']})" for a in row["attempts"])
        print(f"{row['id']}: gold {row['answer']}; {tries}; finish_reason={row['finish_reason']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
