"""The binder's inputs: a problem, its quantities, units and operations as tensors; pointers as label codes.

One encoding for training (rows of the ``bindings`` artifact) and inference (the solver's units and operations), so
the binder sees the same thing in both. Character spans become token spans through the tokenizer's offsets; a
quantity or unit cut off by truncation gets an empty span (it cannot be pointed at).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from mycelium_models.modeling_mycelium import POINTER_CODE, POINTER_KINDS

KIND_CODES = {"quantity": 0, "constant": 1, "op": 2, "end": 3}
assert tuple(KIND_CODES) == POINTER_KINDS


def value_features(value: Fraction) -> list[float]:
    """What the binder knows of a quantity's value: signed log magnitude, integer or not, a fraction below one."""
    v = float(value)
    return [math.copysign(math.log10(1 + abs(v)), v) / 3, float(value.denominator == 1), float(0 < abs(v) < 1)]


def token_span(offsets: list[tuple[int, int]], a: int, b: int) -> list[int]:
    """``[first, last + 1)`` of the tokens overlapping characters ``[a, b)`` (special tokens have empty offsets);
    ``[0, 0]`` when none does."""
    inside = [t for t, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
    return [inside[0], inside[-1] + 1] if inside else [0, 0]


def encode(
    tokenizer,
    problem: str,
    quantities: list[tuple[Fraction, int, int]],
    units: list[tuple[int, int]],
    ops: list[dict],
    op_names: list[str],
    max_length: int,
    max_operands: int,
) -> dict:
    """The binder's features for one problem. ``ops`` are ``{op, unit}`` (and ``operands``, ``answer`` for
    training: pointers ``{kind, index}`` and whether it is the answer operation)."""
    encoded = tokenizer(problem, return_offsets_mapping=True, truncation=True, max_length=max_length)
    offsets = [tuple(o) for o in encoded.pop("offset_mapping")]
    features = dict(encoded)
    features["quantity_spans"] = [token_span(offsets, a, b) for _, a, b in quantities]
    features["quantity_values"] = [value_features(Fraction(v)) for v, _, _ in quantities]
    features["unit_spans"] = [token_span(offsets, a, b) for a, b in units]
    features["op_units"] = [op["unit"] for op in ops]
    features["op_ids"] = [op_names.index(op["op"]) if op["op"] in op_names else 0 for op in ops]
    if ops and "operands" in ops[0]:
        labels = []
        for op in ops:
            codes = [KIND_CODES[p["kind"]] * POINTER_CODE + p["index"] for p in op["operands"]]
            if len(codes) > max_operands or any(p["index"] < 0 for p in op["operands"]):
                labels.append([-100] * (max_operands + 1))  # a pointer no student can give: not learned
            else:
                codes.append(KIND_CODES["end"] * POINTER_CODE)
                labels.append(codes + [-100] * (max_operands + 1 - len(codes)))
        features["labels"] = labels
        features["answer_labels"] = [int(bool(op.get("answer"))) for op in ops]
    return features


PADDING = {
    "quantity_spans": [0, 0],
    "quantity_values": [0.0, 0.0, 0.0],
    "unit_spans": [0, 0],
    "op_units": -1,
    "op_ids": -1,
    "answer_labels": -100,
}


class BinderCollator:
    """Pads a list of :func:`encode` features into the binder's batch tensors."""

    def __init__(self, pad_token_id: int, max_operands: int):
        self.pad_token_id = pad_token_id
        self.slots = max_operands + 1

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = {}
        longest = max(len(f["input_ids"]) for f in features)
        batch["input_ids"] = torch.tensor(
            [f["input_ids"] + [self.pad_token_id] * (longest - len(f["input_ids"])) for f in features]
        )
        batch["attention_mask"] = torch.tensor(
            [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features]
        )
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = torch.tensor(
                [f["token_type_ids"] + [0] * (longest - len(f["token_type_ids"])) for f in features]
            )
        for key, pad in PADDING.items():
            if key not in features[0]:
                continue
            size = max(1, max(len(f[key]) for f in features))
            rows = [list(f[key]) + [pad] * (size - len(f[key])) for f in features]
            batch[key] = torch.tensor(rows, dtype=torch.float32 if key == "quantity_values" else torch.long)
        if "labels" in features[0]:
            size = batch["op_ids"].shape[1]
            batch["labels"] = torch.tensor(
                [list(f["labels"]) + [[-100] * self.slots] * (size - len(f["labels"])) for f in features]
            )
        return batch
