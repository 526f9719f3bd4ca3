"""The step decoder's programs: validated bindings as chains of binary steps, their tensors, and the beam search
that decodes a whole program from a problem, executing every hypothesis exactly as it grows.

A **program** is a list of steps ``(left, right, op)``: each operand is a node code ``kind * POINTER_CODE +
index`` (kinds in :data:`~mycelium_models.modeling_mycelium.NODE_KINDS` order: a problem quantity, a vocabulary
constant, or the result of an earlier step), the op one of ``STEP_OPS``; the answer is the last step's result.
:func:`program_steps` turns a ``bindings`` row (n-ary operations in layout order, the answer operation) into one:
the operations the answer depends on, in the order a post-order walk from the answer meets them, each n-ary ``add``
/ ``mul`` / ``sub`` / ``div`` as a left-to-right chain of binary steps (``a - b - c`` is ``(a - b) - c``).

:func:`search` is the solver's decoding: a beam of ``num_beams`` programs, every step of every hypothesis scored as
one tensor by the decoder, the best ``2 * num_beams`` continuations executed with exact fractions, and what
execution rules out dropped before it can take a place in the beam (:data:`RULES`).
"""

from __future__ import annotations

import collections
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import torch

from mycelium_datasets.arith import ParseError, apply, parse_value
from mycelium_models.modeling_mycelium import (
    COMMUTATIVE_STEP_OPS,
    NEG,
    NODE_KINDS,
    POINTER_CODE,
    REGION_CODES,
    STEP_OPS,
)
from mycelium_models.pointers import token_span, value_features

QUANTITY, CONSTANT, RESULT = (NODE_KINDS.index(k) * POINTER_CODE for k in NODE_KINDS)
STOP_ROW = [-1, -1, -1]
PAD_ROW = [-100, -100, -100]
LIMIT = Fraction(10) ** 12  # a value beyond this is no answer to a word problem: the hypothesis is dropped


class StepError(ValueError):
    """A validated binding that the step decoder cannot write as a program (the reason names why)."""


def program_steps(ops: list[dict], answer_op: int, op_names=STEP_OPS) -> list[tuple[int, int, int]]:
    """The program of a ``bindings`` row: ``ops`` (``op``, ``operands`` as pointers ``{kind, index}``) and its
    ``answer_op``. Raises :class:`StepError` for an operation outside ``op_names``, a constant outside the
    vocabulary (index -1), an operation with one operand, the same node on both sides of a sub or a div (x + x and
    x * x are steps), or a cycle."""
    if not 0 <= answer_op < len(ops):
        raise StepError("no answer operation")
    steps: list[tuple[int, int, int]] = []
    done: dict[int, int] = {}
    visiting: set[int] = set()

    def visit(i: int) -> int:
        if i in done:
            return done[i]
        if i in visiting:
            raise StepError(f"operation {i} depends on its own result")
        visiting.add(i)
        op = ops[i]
        if op["op"] not in op_names:
            raise StepError(f"operation {op['op']!r} is not a step operation ({', '.join(op_names)})")
        codes = []
        for operand in op["operands"]:
            kind, index = operand["kind"], operand["index"]
            if kind == "op":
                if not 0 <= index < len(ops):
                    raise StepError(f"operation {i} takes the result of operation {index}, which does not exist")
                codes.append(visit(index))
            elif kind == "quantity":
                codes.append(QUANTITY + index)
            elif kind == "constant":
                if index < 0:
                    raise StepError("a constant outside the vocabulary")
                codes.append(CONSTANT + index)
            else:
                raise StepError(f"unknown pointer kind {kind!r}")
        if len(codes) < 2:
            raise StepError(f"operation {op['op']!r} with {len(codes)} operand(s)")
        acc = codes[0]
        for code in codes[1:]:
            if code == acc and op["op"] not in COMMUTATIVE_STEP_OPS:  # x - x, x / x: a constant, never a step
                raise StepError(f"the same operand on both sides of {op['op']}")
            steps.append((acc, code, op_names.index(op["op"])))
            acc = RESULT + len(steps) - 1
        visiting.discard(i)
        done[i] = acc
        return acc

    visit(answer_op)
    return steps


def quantity_regions(quantities: list[tuple[int, int]], units: list[tuple[int, int]] | None) -> list[int]:
    """Per quantity ``(char_start, char_end)``: inside a unit, outside every unit, or unknown (no units given)."""
    if units is None:
        return [REGION_CODES["unknown"]] * len(quantities)
    return [REGION_CODES["inside" if any(u <= a and b <= v for u, v in units) else "outside"] for a, b in quantities]


def encode(
    tokenizer,
    problem: str,
    quantities: list[tuple[Fraction, int, int]],
    units: list[tuple[int, int]] | None,
    max_length: int,
    steps: list[tuple[int, int, int]] | None = None,
    max_quantities: int = 64,
) -> dict:
    """The decoder's features for one problem (``quantities`` ``(value, char_start, char_end)``; ``units`` the
    character ranges of the units, or ``None`` when none are known); with ``steps``, ``labels``: one row per step
    and a STOP row. The decoder reads the first ``max_length`` tokens and the quantities in them, at most
    ``max_quantities`` (so a problem's size bounds neither time nor memory); a step on a quantity past them is a
    :class:`StepError`."""
    encoded = tokenizer(problem, return_offsets_mapping=True, truncation=True, max_length=max_length)
    offsets = [tuple(o) for o in encoded.pop("offset_mapping")]
    features = dict(encoded)
    spans = []
    for _, a, b in quantities[:max_quantities]:
        span = token_span(offsets, a, b)
        if span[1] <= span[0]:  # cut off with the text: so is every later quantity
            break
        spans.append(span)
    quantities = quantities[: len(spans)]
    if steps is not None and any(
        code < CONSTANT and code - QUANTITY >= len(spans) for step in steps for code in step[:2]
    ):
        raise StepError("a step takes a quantity past those the decoder reads")
    features["quantity_spans"] = spans
    features["quantity_values"] = [value_features(Fraction(v)) for v, _, _ in quantities]
    features["quantity_regions"] = quantity_regions([(a, b) for _, a, b in quantities], units)
    if steps is not None:
        features["labels"] = [list(step) for step in steps] + [STOP_ROW]
    return features


def step_constants(programs: list[list[dict]], min_programs: int = 5) -> list[str]:
    """The step decoder's constant vocabulary from the ``ops`` of a ``bindings`` training split: every constant
    value that at least ``min_programs`` programs use, the most used first (ties by value). Each constant is a node
    that every step scores against every other node, so a long tail of rare ones costs the square of its length in
    training and decoding (``benchmarks/bench_decoder.py``) and teaches little."""
    counts: collections.Counter = collections.Counter()
    for ops in programs:
        counts.update({o["value"] for op in ops for o in op["operands"] if o["kind"] == "constant"})
    return [v for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_programs]


def in_vocabulary(ops: list[dict], constants: list[str]) -> list[dict]:
    """``ops`` with each constant operand pointing into ``constants`` by its value (``-1`` when not in it): the
    decoder's vocabulary is its own, not the ``bindings`` artifact's index space."""
    index = {value: k for k, value in enumerate(constants)}
    return [
        {
            **op,
            "operands": [
                {**o, "index": index.get(o["value"], -1)} if o["kind"] == "constant" else o for o in op["operands"]
            ],
        }
        for op in ops
    ]


def program_rows(
    batch: dict, *, tokenizer, constants: list[str], max_length: int, max_steps: int, max_quantities: int = 64
) -> dict:
    """``batch -> batch``: ``bindings`` rows as the decoder's features, with ``step_error`` (empty when the row is
    a program of at most ``max_steps`` steps; the reason otherwise, and the row has no labels to learn)."""
    out: dict = {"step_error": []}
    for problem, quantities, units, ops, answer in zip(
        batch["problem"], batch["quantities"], batch["units"], batch["ops"], batch["answer_op"]
    ):
        found = [(q["value"], q["char_start"], q["char_end"]) for q in quantities]
        spans = [(u["char_start"], u["char_end"]) for u in units]
        try:
            steps = program_steps(in_vocabulary(ops, constants), answer)
            if len(steps) > max_steps:
                raise StepError(f"{len(steps)} steps, more than {max_steps}")
            features = encode(tokenizer, problem, found, spans, max_length, steps, max_quantities)
            error = ""
        except StepError as exc:
            error = str(exc)
            features = encode(tokenizer, problem, found, spans, max_length, [], max_quantities)
        features["step_error"] = error
        for key, value in features.items():
            out.setdefault(key, []).append(value)
    return out


PADDING = {"quantity_spans": [0, 0], "quantity_values": [0.0, 0.0, 0.0], "quantity_regions": 0}


class StepCollator:
    """Pads :func:`encode` features into the decoder's batch tensors."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)

        def pad(ids: list) -> int:
            return longest - len(ids)

        batch = {
            "input_ids": torch.tensor([f["input_ids"] + [self.pad_token_id] * pad(f["input_ids"]) for f in features]),
            "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * pad(f["input_ids"]) for f in features]),
        }
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = torch.tensor(
                [f["token_type_ids"] + [0] * pad(f["token_type_ids"]) for f in features]
            )
        for key, fill in PADDING.items():
            size = max(1, max(len(f[key]) for f in features))
            rows = [list(f[key]) + [fill] * (size - len(f[key])) for f in features]
            batch[key] = torch.tensor(rows, dtype=torch.float32 if key == "quantity_values" else torch.long)
        if "labels" in features[0]:
            size = max(len(f["labels"]) for f in features)
            batch["labels"] = torch.tensor(
                [list(f["labels"]) + [PAD_ROW] * (size - len(f["labels"])) for f in features]
            )
        return batch


# -- decoding ------------------------------------------------------------------------------------------------------

# What execution rules out while a program grows (each measured on the validation split; docs/students.md):
#   identity: a step whose result is one of its operands again (x * 1, x / 1, x + 0, x - 0)
#   negative: a step with a negative result (word problems count and measure things)
#   how_many: a final answer that is not a whole non-negative number when the question asks "how many"
RULES = ("identity", "negative", "how_many")
HOW_MANY = re.compile(r"\bhow\s+many\b", re.IGNORECASE)


@dataclass
class Program:
    """A decoded program: its steps ``(left, right, op)`` as node codes, their exact values, its log-probability
    (``score``), the figure the beam chose it by (``rank``: :func:`rank`) and its answer (the last step's value;
    ``None`` when no program was found)."""

    steps: list[tuple[int, int, int]] = field(default_factory=list)
    values: list = field(default_factory=list)
    score: float = float("-inf")
    rank: float = float("-inf")

    @property
    def answer(self):
        return self.values[-1] if self.values else None


def _masks(values: list[list], n_ops: int, op_names, rules) -> torch.Tensor:
    """``(h, N, N, ops)``: True where a step is ruled out by its operands' values (division by zero always; the
    ``identity`` and ``negative`` rules when on), from float copies of the exact values (``nan`` for a node that
    has none: a step never takes it, since nothing could execute it)."""
    v = torch.tensor([[float(x) if x is not None else math.nan for x in row] for row in values], dtype=torch.float64)
    a, b = v[:, :, None], v[:, None, :]
    out = torch.zeros(v.shape[0], v.shape[1], v.shape[1], n_ops, dtype=torch.bool)
    for k, name in enumerate(op_names):
        bad = torch.isnan(a) | torch.isnan(b)
        if name == "div":
            bad |= b == 0
        if "identity" in rules:
            bad |= {"add": (a == 0) | (b == 0), "sub": b == 0, "mul": (a == 1) | (b == 1), "div": b == 1}[name]
        if "negative" in rules and name == "sub":
            bad |= a < b
        out[..., k] = bad
    return out


def rank(score: float, steps: list[tuple[int, int, int]], answer, mentions: list[int], config) -> float:
    """How a complete program is ranked against the others: its log-probability ``score`` divided by
    ``len(steps) ** config.program_length_penalty`` (by default 0: the score itself), less
    ``config.fraction_penalty`` when the answer is not a whole number and ``config.unused_penalty`` for each number
    the problem writes that no step reads. ``mentions[k]`` says which written number quantity node ``k`` reads (one
    number may give two quantities: ``80%`` is 80 and 0.8); the steps' nodes are node indices. Chosen on training
    problems' beams and confirmed on the validation split (docs/students.md)."""
    value = score / len(steps) ** getattr(config, "program_length_penalty", 0.0)
    if getattr(config, "fraction_penalty", 0.0) and not (isinstance(answer, Fraction) and answer.denominator == 1):
        value -= config.fraction_penalty
    if getattr(config, "unused_penalty", 0.0) and mentions:
        read = {mentions[x] for left, right, _ in steps for x in (left, right) if x < len(mentions)}
        value -= config.unused_penalty * len(set(mentions) - read)
    return value


def _best_possible(score: float, config) -> float:
    """The highest :func:`rank` a hypothesis of log-probability ``score`` can still reach (steps only lower the
    score; dividing a negative score by the most steps raises it most; penalties only lower it)."""
    return score / config.max_steps ** getattr(config, "program_length_penalty", 0.0)


def _acceptable_answer(value, question: str, rules) -> bool:
    if "how_many" in rules and HOW_MANY.search(question):
        return isinstance(value, Fraction) and value.denominator == 1 and value >= 0
    return True


@torch.inference_mode()
def search(
    model,
    features: dict[str, torch.Tensor],
    node_values: list[list],
    questions: list[str],
    num_beams: int | None = None,
    rules: tuple[str, ...] = RULES,
    mentions: list[list[int]] | None = None,
) -> list[Program]:
    """The best program of each problem of a batch, by :func:`rank`. ``features`` are the collated :func:`encode`
    features (no labels); ``node_values[b]`` the exact value of each quantity and constant node of problem ``b``
    (in the model's node order; ``None`` for a quantity the model cannot take), ``questions[b]`` its text (for the
    ``how_many`` rule), ``mentions[b]`` which written number each of its quantity nodes reads (for the unused
    penalty; ``None``: every quantity its own number)."""
    config = model.config
    num_beams = max(1, int(num_beams or config.program_beams))
    op_names = config.op_names
    n_ops = len(op_names)
    start = model.encode_problem(**features)
    n = start.nodes.shape[1]
    n_actions = n * n * n_ops
    first_result = n - config.max_steps  # nodes before it are quantities and constants
    first_constant = first_result - len(config.constants)
    results = []
    for b in range(start.nodes.shape[0]):
        s = start.select(torch.tensor([b], device=start.nodes.device))
        first = list(node_values[b]) + [None] * (n - len(node_values[b]))
        alive = [(0.0, [], first, [])]  # (score, steps, node values, step values)
        best = Program()
        n_q = first_constant
        problem_mentions = list(mentions[b]) if mentions is not None else list(range(n_q))
        problem_mentions = [m for m, v in zip(problem_mentions, first[:n_q]) if v is not None]
        for t in range(config.max_steps + 1):
            scores = model.action_scores(s, t).float()
            ruled_out = _masks([h[2] for h in alive], n_ops, op_names, rules).reshape(len(alive), -1)
            scores[:, :n_actions] = scores[:, :n_actions].masked_fill(ruled_out.to(scores.device), NEG)
            # what is ruled out stays out after normalising (when every action is, log_softmax alone would make
            # them all equally likely)
            logp = scores.log_softmax(-1).masked_fill(scores <= NEG / 2, NEG)
            total = torch.tensor([h[0] for h in alive], device=scores.device)[:, None] + logp
            top = total.flatten().topk(min(2 * num_beams, total.numel()))
            grown, parents, lefts, rights, ops = [], [], [], [], []
            for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                if score <= NEG / 2 or len(grown) == num_beams:
                    break
                h, action = divmod(flat, n_actions + 1)
                score_h, steps, values, step_values = alive[h]
                if action == n_actions:  # STOP: a complete program, on at least one number the problem writes
                    reads_problem = any(x < first_constant or y < first_constant for x, y, _ in steps)
                    acceptable = reads_problem and _acceptable_answer(step_values[-1], questions[b], rules)
                    if not acceptable:
                        continue
                    ranked = rank(score, steps, step_values[-1], problem_mentions, config)
                    if ranked > best.rank:
                        best = Program(
                            [_codes(step, n - config.max_steps, len(config.constants)) for step in steps],
                            step_values,
                            score,
                            ranked,
                        )
                    continue
                pair, op = divmod(action, n_ops)
                left, right = divmod(pair, n)
                try:
                    value = apply(op_names[op], [values[left], values[right]])
                except (ParseError, ZeroDivisionError, ValueError, OverflowError, TypeError):
                    continue
                if not isinstance(value, Fraction) or abs(value) > LIMIT:
                    continue
                new_values = list(values)
                new_values[n - config.max_steps + t] = value
                grown.append((score, steps + [(left, right, op)], new_values, step_values + [value]))
                parents.append(h)
                lefts.append(left)
                rights.append(right)
                ops.append(op)
            if not grown or best.rank >= _best_possible(grown[0][0], config):  # nothing alive can win
                break
            device = s.nodes.device
            s = s.select(torch.tensor(parents, device=device))
            s = model.take(s, t, *(torch.tensor(x, device=device) for x in (lefts, rights, ops)))
            alive = grown
        results.append(best)
    return results


def _codes(step: tuple[int, int, int], first_result: int, n_c: int) -> tuple[int, int, int]:
    """A step of node indices as node codes (the node layout is quantities, constants, results)."""
    n_q = first_result - n_c

    def code(node: int) -> int:
        if node < n_q:
            return QUANTITY + node
        if node < first_result:
            return CONSTANT + node - n_q
        return RESULT + node - first_result

    return code(step[0]), code(step[1]), step[2]


def node_values(quantities: list[tuple[Fraction, int, int]], constants: list[str], n_q: int) -> list:
    """The exact values of a problem's nodes in the model's order: the quantities it read (the first ones; ``None``
    for padding up to the batch's ``n_q``), then the constants."""
    values = [Fraction(v) for v, _, _ in quantities[:n_q]]
    return values + [None] * (n_q - len(values)) + [parse_value(c) for c in constants]


def pointer(code: int) -> dict:
    """A node code as the solver trace's pointer: ``quantity`` / ``constant`` by index, a step's result as ``op``."""
    kind, index = divmod(code, POINTER_CODE)
    return {"kind": ("quantity", "constant", "op")[kind], "index": index}


__all__ = [
    "Program",
    "RULES",
    "StepCollator",
    "StepError",
    "encode",
    "node_values",
    "pointer",
    "program_rows",
    "program_steps",
    "rank",
    "search",
]
