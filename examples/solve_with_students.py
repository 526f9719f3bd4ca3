"""Answer math word problems with the three students alone: no chain of thought at inference.

    python examples/solve_with_students.py [MODELS_DIR|ORG/NAME]

MODELS_DIR holds `tagger/`, `classifier/` and `binder/` (default: runs/default/models, written by `mycelium run
--out runs/default`); ORG/NAME is a solver released with `mycelium release` (e.g. ORG/NAME-solver; needs network).
Every answer comes with its trace: the units the tagger found, the operations the classifier gave each, the
operands the binder pointed at and the values, or the stage that failed.
"""

import sys

from mycelium_models.solver import MyceliumSolver

PROBLEMS = [
    "A baker makes 24 muffins and sells 15 of them. How many muffins are left?",
    "Sara buys 3 packs of pencils with 12 pencils in each pack. How many pencils does she have?",
    "Tom earns $18 per hour and works 6 hours. He spends $40. How much money does he have left?",
]


def main(models_dir: str = "runs/default/models") -> None:
    solver = MyceliumSolver.from_pretrained(models_dir)
    for trace in solver.solve(PROBLEMS):
        print("\nPROBLEM:", trace["problem"])
        for unit in trace["units"]:
            print(f"  unit {unit['text']!r} -> {'+'.join(unit['ops'])}")
        for k, op in enumerate(trace["ops"]):
            answer = "  <- the answer" if k == trace["answer_op"] else ""
            print(f"  op{k}: {op['op']}({', '.join(op['operands'])}) = {op['result']}{answer}")
        print(
            "ANSWER:",
            trace["answer"] if trace["answer"] is not None else f"none ({trace['stage']}: {trace['reason']})",
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
