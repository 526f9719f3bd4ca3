"""pytest plugin for mutation runs (``benchmarks/mutation.py``; named in ``[tool.mutmut] pytest_add_cli_args``).

mutmut forks one child per mutant from its main process, which has already run the selected tests once (so spaCy,
the tokenizers and the test modules are loaded and every child starts warm). The one thing a child must not inherit
is the answer-verification worker the main process started: that process is the parent's, and a child asking it
anything fails with "can only test a child process". Each child forgets it and starts its own when it needs one.

mutmut also routes every call of a mutated function through two trampoline frames, so the parser's deepest allowed
nesting (60 levels) needs a deeper Python stack than the default 1,000 frames.
"""

from __future__ import annotations

import os
import sys


def _forget_inherited_worker() -> None:
    from mycelium_datasets import answers

    answers._WORKER._proc = answers._WORKER._conn = None


os.register_at_fork(after_in_child=_forget_inherited_worker)
sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
