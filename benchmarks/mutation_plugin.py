"""pytest plugin for mutation runs (``benchmarks/mutation.py``; named in ``[tool.mutmut] pytest_add_cli_args``).

mutmut forks one child per mutant from its main process, which has already run the selected tests once (so spaCy,
the tokenizers and the test modules are loaded and every child starts warm). The one thing a child must not inherit
is the answer-verification worker the main process started: that process is the parent's, and a child asking it
anything fails with "can only test a child process". Each child forgets it and starts its own when it needs one.

mutmut also routes every call of a mutated function through two trampoline frames, so the parser's deepest allowed
nesting (60 levels) needs a deeper Python stack than the default 1,000 frames.

And a cache must not answer for the code under test: ``arith.latex_to_plain`` keeps the plain text of each LaTeX
string it has rewritten (``functools.lru_cache``), filled by the main process's own run of the tests. A child that
inherits it never calls the mutated ``_latex_groups`` for a text seen before, and mutmut, which maps a function to
the tests during which it runs, would tie ``_latex_groups`` only to the first test that reads each text. The cache is
emptied before every test.
"""

from __future__ import annotations

import os
import sys


def _forget_inherited_worker() -> None:
    from mycelium_datasets import answers

    answers._WORKER._proc = answers._WORKER._conn = None


def pytest_runtest_setup(item) -> None:
    from mycelium_datasets import arith

    arith.latex_to_plain.cache_clear()


os.register_at_fork(after_in_child=_forget_inherited_worker)
sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
