"""The ``bindings`` artifact: each validated problem's solution as pointers into its text, for the binder student.

The validated DAGs of ``op_pairs`` already know where every operand came from (a problem number with its offsets,
an earlier operation's result, an implicit constant); this artifact writes that down in the form a solver that
reads only the problem can predict (see :mod:`mycelium_datasets.dag`):

- ``quantities``: every number the problem writes (:func:`~mycelium_datasets.numbers.quantities`: digits, ``1,200``,
  ``80%`` read as 80 and as 0.8, number words such as *half*, *twice*, *a dozen*), the candidates of a pointer;
- ``units``: the operation regions merged into the runs a perfect IO tagger would find, in text order;
- ``ops`` in layout order (unit by unit, the CoT's order inside a unit), each with its ``unit``, its operation and its
  ``operands`` as pointers ``{kind, index, value}``: ``quantity`` (index into ``quantities``), ``op`` (index into
  ``ops``; any other operation, a result may be used by any later or earlier-laid-out one) or ``constant`` (index
  into the **constant vocabulary**, learned from the training split: each constant used at least
  ``min_constant_count`` times there, in the card with its count; ``-1`` for a constant outside it, which only a
  reference can carry);
  ``add`` and ``mul`` list their operands in one canonical order (quantities in text order, then results, then
  constants); ``sub``, ``div`` and the others keep the CoT's order, which carries meaning;
- ``answer_op``: which operation's value is the answer (SELECTION); a CoT that wrote its answer as a percent
  ("= 34%" answers 34) gets an explicit ``mul`` by the constant 100.

Executing the reference binding (:func:`mycelium_datasets.dag.execute`) reproduces ``op_pairs``' executed answer
for every row (the builder checks it); a problem it cannot represent is counted as a drop with its reason.

Input columns: ``id``, ``problem``, ``ops``, ``validated``, ``op_status``, ``executed_answer`` (``op_pairs``).
Output columns: ``id``, ``problem``, ``quantities``, ``units``, ``ops`` (``op``, ``unit``, ``operands``,
``result``), ``answer_op``, ``constants`` (the values of the constants it uses), ``executed_answer``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from fractions import Fraction

import datasets

from .arith import apply, format_value, parse_value, to_sympy, values_equal
from .columns import require_columns
from .dag import DagError, execute, layout_order, unit_of, units_from_regions
from .numbers import quantities as problem_quantities
from .runner import map_batches

# 1.1.1: operations are executed with solve2 (a system of two linear equations, mycelium_datasets.systems); rows
# as before
# 1.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc
# 1.1.2: problems reads the equation shape; rows of the other shapes as before
# 1.1.6: the runner's progress bars (one per stage and split, on a terminal); the same rows as 1.1.5
# 1.1.6: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 1.1.7: quiet progress bars and the cards' dataset_info licence together (two branches merged)
VERSION = "1.1.7"
INPUT_COLUMNS = ("id", "problem", "ops", "validated", "op_status", "executed_answer")

POINTER = {"kind": datasets.Value("string"), "index": datasets.Value("int32"), "value": datasets.Value("string")}
SPAN = {"char_start": datasets.Value("int32"), "char_end": datasets.Value("int32"), "text": datasets.Value("string")}
QUANTITY = {"value": datasets.Value("string"), **SPAN}
BOUND_OP = {
    "op": datasets.Value("string"),
    "unit": datasets.Value("int32"),
    "operands": datasets.List(POINTER),
    "result": datasets.Value("string"),
}
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "problem": datasets.Value("string"),
        "quantities": datasets.List(QUANTITY),
        "units": datasets.List(SPAN),
        "ops": datasets.List(BOUND_OP),
        "answer_op": datasets.Value("int32"),
        "constants": datasets.List(datasets.Value("string")),
        "executed_answer": datasets.Value("string"),
    }
)


@dataclass
class BindingsConfig:
    """Configuration of the ``bindings`` artifact.

    Args:
        min_constant_count (`int`, *optional*, defaults to 2): a constant enters the vocabulary when the training
            split's validated DAGs use it at least this often (GSM8K: ``2`` x46, ``12`` x17, ``100`` x16, then a long
            tail of singletons that are mostly numbers the linker missed).
    """

    min_constant_count: int = field(
        default=2, metadata={"help": "Uses in the training split for a constant to enter the vocabulary."}
    )

    def __post_init__(self) -> None:
        if self.min_constant_count < 1:
            raise ValueError(f"min_constant_count must be positive, got {self.min_constant_count}")


# add(a, b, c) and mul(a, b) take their operands in a canonical order: problem quantities in text order, then
# results in layout order, then constants (the CoT's order of a sum is not something a reader of the problem can know)
COMMUTATIVE = ("add", "mul")
POINTER_ORDER = {"quantity": 0, "op": 1, "constant": 2}


class BindingError(ValueError):
    """A validated DAG that the pointer representation cannot hold (the reason is the drop's reason)."""


def bind(problem: str, ops: list[dict], constants: list[str], executed: str | None = None) -> dict:
    """One problem's binding from its ``op_pairs`` operations (``constants`` is the vocabulary, values as strings).

    Raises :class:`BindingError` when an op has no problem region, an operand is not a quantity the problem writes,
    or executing the binding does not reproduce ``executed`` (``op_pairs``' executed answer)."""
    if not ops:
        raise BindingError("no operation")
    found = problem_quantities(problem)
    index = {(a, b, v): k for k, (v, a, b) in enumerate(found)}
    regions = [(op["region"]["char_start"], op["region"]["char_end"]) for op in ops]
    if any(a < 0 or b <= a for a, b in regions):
        raise BindingError("an operation has no problem region")
    ops = list(ops)
    if (ops[-1].get("written_result") or "").rstrip().endswith("%"):  # "= 34%" answers 34: an explicit step
        last = len(ops) - 1
        ops.append(
            {
                "op": "mul",
                "region": ops[last]["region"],
                "operands": [
                    {"value": ops[last]["result"], "source": "op", "op_index": last, "char_start": -1, "char_end": -1},
                    {"value": "100", "source": "constant", "op_index": -1, "char_start": -1, "char_end": -1},
                ],
                "result": format_value(apply("mul", [parse_value(ops[last]["result"]), Fraction(100)])),
            }
        )
        regions.append(regions[last])
    units = units_from_regions(problem, regions)
    op_units = [unit_of(units, a) for a, _ in regions]
    order = layout_order(op_units)
    position = {old: new for new, old in enumerate(order)}
    bound, used = [], []
    for old in order:
        op = ops[old]
        operands = []
        for o in op["operands"]:
            if o["source"] == "problem":
                k = index.get((o["char_start"], o["char_end"], Fraction(o["value"])))
                if k is None:
                    raise BindingError(f"operand {o['value']} at {o['char_start']} is not a quantity of the problem")
                operands.append({"kind": "quantity", "index": k, "value": o["value"]})
            elif o["source"] == "op":
                operands.append({"kind": "op", "index": position[o["op_index"]], "value": o["value"]})
            else:
                value = format_value(parse_value(o["value"]))
                used.append(value)
                k = constants.index(value) if value in constants else -1
                operands.append({"kind": "constant", "index": k, "value": value})
        if op["op"] in COMMUTATIVE:  # one order for operands whose order means nothing: fewer labels to learn
            operands.sort(key=lambda o: (POINTER_ORDER[o["kind"]], o["index"], o["value"]))
        bound.append({"op": op["op"], "unit": op_units[old], "operands": operands, "result": op["result"]})
    row = {
        "problem": problem,
        "quantities": [
            {"value": format_value(v), "char_start": a, "char_end": b, "text": problem[a:b]} for v, a, b in found
        ],
        "units": [{"char_start": a, "char_end": b, "text": problem[a:b]} for a, b in units],
        "ops": bound,
        "answer_op": position[len(ops) - 1],
        "constants": used,
    }
    try:
        value, _ = execute(bound, row["answer_op"], found, constants)
    except DagError as exc:
        raise BindingError(f"the binding does not execute: {exc}") from exc
    if executed is not None and not values_equal(parse_value(executed), value):
        raise BindingError(f"the binding executes to {format_value(value)}, op_pairs to {executed}")
    row["executed_answer"] = format_value(value)
    return row


def constant_vocabulary(pairs: datasets.Dataset, min_count: int) -> list[tuple[str, int]]:
    """``(constant, count)`` of the constants the validated DAGs of ``pairs`` (a training split) use at least
    ``min_count`` times, most used first (ties by value)."""
    counts: collections.Counter = collections.Counter()
    for problem, ops, ok in zip(pairs["problem"], pairs["ops"], pairs["validated"]):
        if not ok:
            continue
        try:
            counts.update(bind(problem or "", ops, [])["constants"])
        except BindingError:
            continue
    kept = [(c, n) for c, n in counts.items() if n >= min_count]
    return sorted(kept, key=lambda x: (-x[1], float(to_sympy(parse_value(x[0])))))


def make_bindings(batch: dict, *, constants: list[str]) -> dict:
    """``batch -> batch`` over validated ``op_pairs`` rows: each problem's binding, or its ``bind_error``."""
    out = {name: [] for name in FEATURES}
    out["bind_error"] = []
    for row_id, problem, ops, executed in zip(batch["id"], batch["problem"], batch["ops"], batch["executed_answer"]):
        try:
            row = bind(problem or "", ops, constants, executed)
            error = ""
        except BindingError as exc:
            row = {"problem": problem or "", "quantities": [], "units": [], "ops": [], "answer_op": -1}
            row.update(constants=[], executed_answer=executed)
            error = str(exc)
        row["id"] = row_id
        for name in FEATURES:
            out[name].append(row[name])
        out["bind_error"].append(error)
    return out


def build_bindings(
    pairs: datasets.DatasetDict, config: BindingsConfig, num_proc: int | None = None
) -> tuple[datasets.DatasetDict, dict[str, int], list[tuple[str, int]]]:
    """Bindings of every split's validated problems (on ``num_proc`` processes); returns them, the drops by reason,
    and the constant vocabulary (learned from the ``train`` split, used for every split)."""
    for dataset in pairs.values():
        require_columns(dataset, INPUT_COLUMNS, stage="bindings", upstream="op_pairs")
    vocabulary = constant_vocabulary(pairs["train"], config.min_constant_count) if "train" in pairs else []
    constants = [c for c, _ in vocabulary]
    result, dropped = datasets.DatasetDict(), collections.Counter()
    for split, dataset in pairs.items():
        for status, ok in zip(dataset["op_status"], dataset["validated"]):
            if not ok:
                dropped[f"not validated: {status}"] += 1
        kept = dataset.filter(lambda v: v, input_columns="validated", desc="validated problems")
        bound = map_batches(
            kept,
            make_bindings,
            batch_size=64,
            remove_columns=kept.column_names,
            features=datasets.Features({**FEATURES, "bind_error": datasets.Value("string")}),
            fn_kwargs={"constants": constants},
            num_proc=num_proc,
            desc=f"bindings/{split}",
        )
        for error in bound["bind_error"]:
            if error:
                dropped[f"cannot be bound: {error.split(':')[0]}"] += 1
        result[split] = bound.filter(lambda e: not e, input_columns="bind_error").remove_columns("bind_error")
    return result, dict(dropped), vocabulary
