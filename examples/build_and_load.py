"""Build the first two artifacts with the Python API, then load them back exactly as a user would.

    python examples/build_and_load.py [OUT_DIR]

Uses the embedded defaults (gsm_symbolic problems, reference CoTs, SmolLM2-135M-Instruct's tokenizer); offline.
"""

import sys

from datasets import load_dataset

from mycelium_datasets.builders import CotTracesBuilder, ProblemsBuilder
from mycelium_datasets.cot_traces import CotTracesConfig
from mycelium_datasets.problems import ProblemsConfig


def main(out_dir: str = "runs/example") -> None:
    ProblemsBuilder(out_dir, ProblemsConfig(source="gsm_symbolic", size=10)).build()
    CotTracesBuilder(out_dir, CotTracesConfig(cot_source="reference")).build()

    traces = load_dataset(f"{out_dir}/cot_traces")  # Parquet + card: no Mycelium code needed to read it
    print(traces)
    for row in traces["train"].select(range(2)):
        print("\nPROBLEM:", row["problem"])
        print("COT:", row["cot"])
        print(
            "ANSWER:",
            row["cot_answer"],
            f"({row['answer_source']})",
            "gold:",
            row["answer"],
            "correct:",
            row["correct"],
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
