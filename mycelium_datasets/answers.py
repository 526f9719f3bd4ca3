"""Answer extraction from a chain of thought, gold-answer normalization, and equivalence checking.

Extraction follows a fixed priority and records where the answer came from (``answer_source``):

1. ``boxed``: the *last* ``\\boxed{...}`` (or ``\\fbox{...}``), braces matched with nesting. Can be switched off
   (``allow_boxed=False``) for honest evaluation: a pipeline scored through ``\\boxed{}`` measures the teacher, not
   the pipeline (field guide, Bug Hall of Fame).
2. ``hash``: GSM8K's final line ``#### 72``.
3. ``phrase``: "The answer is ...", "final answer: ...".
4. ``last_number``: the last number in the text.
5. ``none``: nothing found.

Equivalence (:func:`answers_match`) is exact for plain numbers (``1,234`` == ``1234``, ``0.5`` == ``1/2``), and goes
through ``math-verify`` for everything else, with a strict numeric check on top: when both sides are numbers,
math-verify's rounding is not trusted (it calls ``1/2004!`` equal to ``1/2006!``) and no percent rescaling applies
(``500`` is not ``5%``). Every math-verify call runs in a worker process under a wall-clock limit, so a LaTeX bomb
gives a recorded ``timeout`` instead of a hang, from any thread.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import re
import threading
from dataclasses import dataclass
from fractions import Fraction

from .numbers import DECIMALS, GROUPED_INT, NOT_AFTER_WORD, ZERO_WIDTH

logger = logging.getLogger(__name__)

ANSWER_SOURCES = ("boxed", "hash", "phrase", "last_number", "none")
# How a dataset writes its gold answer (normalize_gold): after "####", in the last \boxed{}, or as the answer itself.
GOLD_SHAPES = ("gsm8k", "math", "plain")

# Longest answer string we try to interpret; longer strings are recorded as unparseable, not parsed.
MAX_ANSWER_CHARS = 2_000
# Seconds the verification worker may take to start (spawn, import sympy and math-verify) before it is given up.
STARTUP_TIMEOUT = 120
# Plain-number fast path: at most this many digits (a 10,000-digit integer is not an answer, it is an attack).
MAX_NUMBER_DIGITS = 400
# A number as a CoT writes an answer: a sign and a dollar sign may precede it ("-$1,200.50"); see ``numbers``.
_NUMBER = rf"[-−]?\$?\s?(?:{GROUPED_INT}|\d+){DECIMALS}|[-−]?\.\d+"
_NUMBER_RE = re.compile(rf"{NOT_AFTER_WORD}(?:{_NUMBER})(?![\d])")
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_PHRASE_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*(?:is)?\s*[:：]?|answer\s*[:：])\s*(?P<ans>[^\n]*)",
    re.IGNORECASE,
)
_BOX_OPEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PLAIN_NUMBER_RE = re.compile(rf"^[-−]?(?:{GROUPED_INT}|\d+){DECIMALS}$|^[-−]?\.\d+$")
_PLAIN_FRACTION_RE = re.compile(r"^([-−]?\d+)\s*/\s*(\d+)$")
_LATEX_FRACTION_RE = re.compile(r"^([-−]?)\\[dt]?frac\{([-−]?\d+)\}\{(\d+)\}$")


# ---------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------


def extract_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{...}``/``\\fbox{...}`` in ``text``, braces matched with nesting.

    An unclosed last box is skipped (the previous closed one, if any, is returned). One pass over the text, so a
    string of thousands of unclosed boxes is as quick as one (scanning from each box to the end was quadratic).
    """
    opens = {m.end() - 1 for m in _BOX_OPEN_RE.finditer(text)}  # positions of the boxes' "{"
    if not opens:
        return None
    result, last, stack, i = None, -1, [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            start = stack.pop()
            if start in opens and start > last:  # the last box is the last one opened (and closed)
                last, result = start, text[start + 1 : i].strip()
        i += 1
    return result


def _clean_tail(answer: str) -> str:
    """Trim what usually follows an answer on its line: trailing period, ``$...$`` wrapping, bold markers."""
    answer = answer.strip().strip("*").strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        inner = answer.strip("$").strip()
        if inner:
            answer = inner
    answer = re.sub(r"[.。]\s*$", "", answer).strip()
    return answer


def extract_answer(text: str, allow_boxed: bool = True) -> tuple[str | None, str]:
    """Extract the final answer of a chain of thought.

    Args:
        text (`str`): the CoT.
        allow_boxed (`bool`, *optional*, defaults to `True`): read ``\\boxed{}``; switch off for honest evaluation.

    Returns:
        `(answer, answer_source)` where ``answer_source`` is one of :data:`ANSWER_SOURCES`; ``answer`` is `None`
        exactly when the source is ``"none"``.
    """
    if not isinstance(text, str) or not text.strip():
        return None, "none"
    if allow_boxed:
        boxed = extract_boxed(text)
        if boxed:
            return boxed, "boxed"
    hashes = _HASH_RE.findall(text)
    for candidate in reversed(hashes):
        candidate = _clean_tail(candidate)
        if candidate:
            return normalize_number_text(candidate), "hash"
    phrases = list(_PHRASE_RE.finditer(text))
    for match in reversed(phrases):
        candidate = _clean_tail(match.group("ans"))
        if not candidate:
            continue
        # "The answer is 18 dollars." -> the number; "The answer is \frac{1}{2}" -> kept as written.
        numbers = _NUMBER_RE.findall(candidate)
        if numbers and not re.search(r"\\[a-zA-Z]|[/^]", candidate):
            return normalize_number_text(numbers[0]), "phrase"
        return candidate, "phrase"
    numbers = _NUMBER_RE.findall(text)
    if numbers:
        return normalize_number_text(numbers[-1]), "last_number"
    return None, "none"


def normalize_number_text(answer: str) -> str:
    """Normalize a number as written in a word problem: ``$1,234.50`` -> ``1234.50``, ``−3`` -> ``-3``.

    Anything that is not a plain number (``\\frac{1}{2}``, ``x+1``) is returned stripped but otherwise unchanged.
    """
    s = answer.strip().replace("−", "-")
    # LaTeX spacing inside numbers (``32,\\!348``, ``1\\,000``) and escaped dollars (``\\$5``).
    candidate = re.sub(r"(?<=\d)\\[,!;](?=\d)", "", s.replace("\\!", "").replace("\\$", "$"))
    candidate = re.sub(f"[$ {ZERO_WIDTH}]", "", candidate).rstrip(".")
    if _PLAIN_NUMBER_RE.match(candidate):
        return candidate.replace(",", "")
    return s


def normalize_gold(answer: str | None, shape: str = "plain") -> tuple[str | None, str]:
    """Normalize a dataset's gold answer and say whether it could be read.

    Args:
        answer: the raw gold answer (a GSM8K ``answer`` field, a MATH ``solution``, or a plain answer string).
        shape: ``"gsm8k"`` (take what follows the last ``####``), ``"math"`` (the last ``\\boxed{}``) or
            ``"plain"`` (the answer itself).

    Returns:
        `(normalized, status)` with status ``"ok"``, ``"missing_answer"`` or ``"unparseable_answer"``.
    """
    if shape not in GOLD_SHAPES:
        raise ValueError(f"unknown gold answer shape {shape!r}; valid choices: {', '.join(GOLD_SHAPES)}")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return None, "missing_answer"
    if not isinstance(answer, str):
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            return None, "unparseable_answer"
        if isinstance(answer, float) and not math.isfinite(answer):  # NaN / Infinity, which JSON readers accept
            return None, "unparseable_answer"
        answer = str(answer)
    if len(answer) > 200_000:
        return None, "unparseable_answer"
    if shape == "gsm8k":
        hashes = _HASH_RE.findall(answer)
        if not hashes or not _clean_tail(hashes[-1]):
            return None, "unparseable_answer"
        return normalize_number_text(_clean_tail(hashes[-1])), "ok"
    if shape == "math":
        boxed = extract_boxed(answer)
        if boxed is None:
            return None, "unparseable_answer"
        return boxed, "ok"
    return normalize_number_text(_clean_tail(answer)), "ok"


# ---------------------------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------------------------


def _plain_value(answer: str) -> Fraction | None:
    """Exact value of a plain number or simple fraction (``1,234``, ``-0.5``, ``3/4``, ``\\frac{3}{4}``)."""
    s = normalize_number_text(answer)
    s = s.replace("$", "").replace(" ", "")
    if sum(ch.isdigit() for ch in s) > MAX_NUMBER_DIGITS:
        return None
    if _PLAIN_NUMBER_RE.match(s):
        return Fraction(s.replace(",", ""))
    m = _PLAIN_FRACTION_RE.match(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = _LATEX_FRACTION_RE.match(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    return None


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing a predicted answer with a gold answer.

    ``match`` is `True`/`False`, or `None` when no verdict could be reached; ``method`` says how it was decided:
    ``exact`` (plain numbers), ``math_verify``, ``strict_numeric`` (math-verify overruled for numbers),
    ``missing`` (no prediction or no gold), ``too_long``, ``timeout`` or ``error``.
    """

    match: bool | None
    method: str


def _strict_numeric_equal(a, b) -> bool | None:
    """Exact-ish equality of two sympy numbers without free symbols; `None` when either is not such a number."""
    import sympy

    if not (isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic)):
        return None
    if a.free_symbols or b.free_symbols or not (a.is_number and b.is_number):
        return None
    va, vb = sympy.N(a, 50), sympy.N(b, 50)
    if not (va.is_real and vb.is_real):
        return None
    if va == vb:
        return True
    scale = max(abs(va), abs(vb))
    return bool(abs(va - vb) <= scale * sympy.Float("1e-9", 50))


def _verify_in_process(pred: str, gold: str) -> tuple[bool | None, str]:
    """math-verify parse + verify, then the strict numeric check. Runs inside the worker process."""
    from math_verify import parse, verify

    def wrap(s: str) -> str:
        return s if "$" in s or "\\(" in s or "\\[" in s else f"${s}$"

    gold_parsed = parse(wrap(gold), parsing_timeout=None)
    pred_parsed = parse(wrap(pred), parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False, "math_verify"
    verdict = verify(gold_parsed, pred_parsed, timeout_seconds=None)
    strict = _strict_numeric_equal(gold_parsed[0], pred_parsed[0])
    if strict is not None and strict != verdict:
        return strict, "strict_numeric"
    return bool(verdict), "math_verify"


def _worker_main(conn) -> None:  # pragma: no cover - runs in the worker process
    import resource

    # math-verify warns on every call that its own (signal-based) timeouts are off: this process is the limit.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    # A LaTeX bomb can allocate gigabytes before the wall-clock limit fires; cap the worker's address space.
    try:
        limit = 4 * 1024**3
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass
    import math_verify  # noqa: F401 - imported before "ready", so that no job's time limit pays for it

    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        pred, gold = job
        try:
            conn.send(_verify_in_process(pred, gold))
        except MemoryError:
            conn.send((None, "error"))
        except Exception as exc:  # noqa: BLE001 - any parser failure is a recorded verdict, never a crash
            conn.send((None, f"error:{type(exc).__name__}"))


class _VerifyWorker:
    """One long-lived worker process per parent process; killed and restarted when a job overruns its limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None

    def _start(self) -> bool:
        """Start the worker and wait until its imports are done (under a limit of their own); False if it fails."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="mycelium-verify")
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        try:
            if parent.poll(STARTUP_TIMEOUT) and parent.recv() == "ready":
                return True
        except (EOFError, OSError):
            pass
        logger.warning("the answer verification worker did not start within %ds", STARTUP_TIMEOUT)
        self._kill()
        return False

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        self._proc = self._conn = None

    def run(self, pred: str, gold: str, timeout: float) -> tuple[bool | None, str]:
        with self._lock:
            if (self._proc is None or not self._proc.is_alive()) and not self._start():
                return None, "error"
            try:
                self._conn.send((pred, gold))
                if self._conn.poll(timeout):  # the job's own limit: the worker's imports are already done
                    return self._conn.recv()
            except (EOFError, BrokenPipeError, OSError):
                self._kill()
                return None, "error"
            logger.warning("answer verification exceeded %.1fs; worker restarted (pred=%.60r)", timeout, pred)
            self._kill()
            return None, "timeout"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            self._kill()

    def forget(self) -> None:
        """In a process forked from this one: drop the parent's worker and lock (they are the parent's; asking its
        worker from here would mix two processes' answers on one pipe); this process starts its own on first use."""
        self._lock = threading.Lock()
        self._proc = self._conn = None


_WORKER = _VerifyWorker()
# The CPU stages' worker processes (runner.map_batches) are forked from a process that may hold a worker already.
os.register_at_fork(after_in_child=_WORKER.forget)


def answers_match(pred: str | None, gold: str | None, timeout: float = 5.0) -> Verdict:
    """Decide whether ``pred`` is the same answer as ``gold``.

    Plain numbers are compared exactly in this process; anything else goes to math-verify in a worker process
    limited to ``timeout`` seconds (works from any thread, unlike signal-based limits).
    """
    if pred is None or gold is None or not str(pred).strip() or not str(gold).strip():
        return Verdict(None if gold is None else False, "missing")
    pred, gold = str(pred).strip(), str(gold).strip()
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return Verdict(None, "too_long")
    if pred == gold:
        return Verdict(True, "identical")
    a, b = _plain_value(pred), _plain_value(gold)
    if a is not None and b is not None:
        return Verdict(a == b, "exact")
    match, method = _WORKER.run(pred, gold, timeout)
    return Verdict(match, method)


def shutdown_worker() -> None:
    """Stop the verification worker process (it is also stopped at interpreter exit, being a daemon)."""
    _WORKER.close()
