"""The ``mycelium`` command's front: its commands, its usage, and the hand-over to the command's handler.

Why this is a module of its own, outside both packages, and why it imports nothing: start-up time. ``import
mycelium_models`` registers the students with transformers' Auto classes (what lets ``from_pretrained`` load them
after ``import mycelium_models``), so it imports torch and transformers: 4 to 6 seconds on a 2-core CPU, paid by
every module inside that package before it runs a line. ``mycelium``, ``mycelium --help`` and an unknown command
need none of it, and are answered here at once; a command's handler (``mycelium_run.cli``) is imported only when
that command runs, and imports what the command needs (``datasets``, ``TrainingArguments``, the artifacts' modules).
``benchmarks/bench_cli_startup.py`` measures both (fresh processes); ``tests/test_layers.py`` checks that importing
this module loads no torch, transformers or datasets.

``python -m mycelium_run.cli`` (as ``torchrun`` and ``accelerate launch`` start it) is the same command line.
"""

from __future__ import annotations

import difflib
import sys

# Each command and its one-line description: the usage lists them, and each command's own --help repeats its line.
COMMANDS = {
    "run": "the main job: every stage, end to end, into --out DIR",
    "build": "build one artifact (and any missing upstream artifact) into --out DIR",
    "show": "one problem's spans, IAF maps and JSD curve as an HTML page: show DIR --id ID --out PAGE.html",
    "train": "train a student from a run folder: train STUDENT --run_dir DIR [TrainingArguments] (train --help)",
    "solve": 'answer problems with the students, no CoT: solve --models DIR/models|ORG/NAME "PROBLEM TEXT" ...',
    "eval": "the students alone, no CoT, on any problems: eval --models DIR/models --source S --out EVALDIR",
    "loop": "the self-improving loop on a run folder: loop --run_dir DIR [--max_rounds N]",
    "verify": "check a run folder's artifacts against their completion markers (sizes and sha256): verify DIR",
    "release": "publish artifacts / students to the Hub (dry run unless --push): release DIR --repo ORG/NAME",
    "sources": "list the problem sources",
    "artifacts": "list the artifacts in pipeline order",
}


def usage() -> str:
    lines = ["usage: mycelium COMMAND [options]   (mycelium COMMAND --help for the options)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``mycelium ARGV``; returns the exit status (0, 1 for a damaged run folder, 2 for a refused command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        nearest = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        print(
            f"mycelium: error: unknown command {command!r}; valid choices: {', '.join(COMMANDS)}{hint}",
            file=sys.stderr,
        )
        return 2
    from mycelium_run.cli import run_command  # the handlers: torch, transformers, datasets

    return run_command(command, rest)


if __name__ == "__main__":
    sys.exit(main())
