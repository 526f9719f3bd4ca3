"""The ``op_pairs`` artifact: each problem's operations, parsed from its CoT, linked to the problem, and executed.

One row per problem: the operation DAG of its CoT, built and validated by :func:`op_graph.validate_trace
<mycelium_datasets.op_graph.validate_trace>` (equations read by :mod:`mycelium_datasets.equations`, parsed by the
safe parser of :mod:`mycelium_datasets.arith`; tier 1 the parser, with exact values (Fractions, or sympy numbers built
from the parse tree when irrational: ``\\sqrt{117} = 3\\sqrt{13}``, ``\\pi``); tier 2 an equation in one unknown solved
exactly, linear (``solve``) or polynomial of degree 2 to 4 (``poly_root``, the root the CoT goes on to use), and,
when the trace does not validate otherwise, two linear equations in two unknowns as a system (``solve2``); tier 3,
the operation classifier as a fallback for steps the parsers miss, needs trained students: ``mycelium loop`` reads its
mop-up CoTs with it, this artifact is built before any student exists). An op's ``result`` and its
operands' ``value`` are ``24``, ``0.5``, ``1/3``, or LaTeX for an irrational value (``3 \\sqrt{13}``): read them
with :func:`arith.parse_value <mycelium_datasets.arith.parse_value>`. Each operand keeps its provenance
(a problem number with its offsets, an earlier op, or a constant) and each op its problem region (the span's IAF
region holding one of its problem operands, else the clause around its first problem operand).

**Execution is the verifier**: ``validated`` iff the DAG executes to the gold answer. Every problem keeps a row, with
``op_status`` (``validated``, ``wrong_answer``, ``unverified`` (the check gave no verdict: a timeout, a gold too long
to read), ``no_ops``, ``no_spans``, ``no_gold``, ``execution_error``) and a reason.

Input columns: ``id``, ``problem``, ``answer``, ``spans``, ``span_regions`` (``clause_regions``).
Output columns: ``clause_regions``'s plus ``ops`` (``op``, ``operands``, ``result``, ``written_result``, ``expr``,
``span_index``, ``span_text``, ``region``, ``parse_tier``), ``executed_answer``, ``validated``, ``op_status``,
``op_status_reason``, ``n_parse_errors``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import datasets

from . import clause_regions as clause_regions_mod
from .columns import require_columns
from .defaults import load_spacy
from .op_graph import OP_NAMES, validate_trace
from .runner import map_batches

__all__ = ["FEATURES", "INPUT_COLUMNS", "OP_NAMES", "OpPairsConfig", "VERSION", "build_op_pairs", "make_ops"]

# 2.5.0: plain traces: an equation with its letter on both sides or on the right ("7 + x = 2 * x", "3 = 1+ F",
# "2p/5 = (p+$600)/4") is solved too, and "2b - 5 = 3(b - 5)" is no longer read as "2b - 5 = 3" (GSM8K train
# 0.962 -> 0.965 on tiers 1-2, +21, none lost); a trace that does not validate is read again with its pairs of linear
# equations in two unknowns solved as systems (op solve2; GSM8K train +1); a LaTeX statement whose only arithmetic is
# \choose is read ("{8 \choose 2} = 28": MATH-500 dev 0.516 -> 0.520); plain equations with unit phrases of up to 10
# words, hyphenated units ("push-ups/set"), units against the number ("10ml", "500cm³"), "500(.40)" and "√(144)" are
# read (GSM8K train +40, none lost); so are arithmetic in words between numbers ("14 plus 8 equals 22", "48 divided by
# 4 is 12") and letters a trace writes only against numbers ("400g", "40A": GSM8K train +39, none lost); tier 3 never
# reads a step that writes algebra ("1/2*X + 14": 2 + 14 = 16 was a coincidence);
# 2.4.0: tier 2 in plain traces: an equation in one letter ("2x+140=198") is solved (gsm_symbolic 0.973 -> 0.987,
# GSM8K train 0.951 -> 0.962 on tiers 1-2);
# 2.3.0: the card counts operations by parse tier (tier 3, the classifier fallback, is built in op_graph and used by
# the loop; this artifact's rows are unchanged);
# 2.2.0: GSM8K's plain equations with a leading decimal point (".4"), an en dash or minus sign, a capital X, or a
# currency sign after a number are read (GSM8K train yield 0.921 -> 0.951);
# 2.1.0: cards: licence of the whole lineage, source_datasets, version in configs; Parquet shards; num_proc;
# 2.0.1: an even root of a negative irrational base is refused (2.0.0 kept a non-real value);
# 2.0.0: values may be irrational (LaTeX strings: 3 \\sqrt{13}, 288 \\pi), new op poly_root (tier 2)
# 2.5.1: problems reads the equation shape; rows of the other shapes as before
# 2.5.5: the card no longer says systems are not parsed (two linear equations in two unknowns are)
# 2.5.6: the runner's progress bars (one per stage and split, on a terminal); the same rows as 2.5.5
# 2.5.6: cards: license and description in dataset_info (ds.info.license), the run folder's card; rows as before
# 2.5.7: quiet progress bars and the cards' dataset_info licence together (two branches merged)
# 2.5.8: teacher generation on CPU runs on the free cores (threads.py); the same greedy CoTs, the same rows
VERSION = "2.5.8"
# 1.1.0: fraction words are also their denominator; an op with neither problem operands nor an IAF region takes its
# input's region
INPUT_COLUMNS = ("id", "problem", "answer", "spans", "span_regions")

OPERAND = {
    "value": datasets.Value("string"),
    "source": datasets.Value("string"),
    "char_start": datasets.Value("int32"),
    "char_end": datasets.Value("int32"),
    "op_index": datasets.Value("int32"),
}
OP = {
    "op": datasets.Value("string"),
    "operands": datasets.List(OPERAND),
    "result": datasets.Value("string"),
    "written_result": datasets.Value("string"),
    "expr": datasets.Value("string"),
    "span_index": datasets.Value("int32"),
    "span_text": datasets.Value("string"),
    "region": clause_regions_mod.REGION,
    "parse_tier": datasets.Value("int32"),
}
FEATURES = datasets.Features(
    {
        **clause_regions_mod.FEATURES,
        "ops": datasets.List(OP),
        "executed_answer": datasets.Value("string"),
        "validated": datasets.Value("bool"),
        "op_status": datasets.Value("string"),
        "op_status_reason": datasets.Value("string"),
        "n_parse_errors": datasets.Value("int32"),
    }
)


@dataclass
class OpPairsConfig:
    """Configuration of the ``op_pairs`` artifact.

    Args:
        op_verify_timeout (`float`, *optional*, defaults to 5.0): seconds per comparison with the gold answer.
        op_spacy_pipeline (`str`, *optional*): spaCy pipeline for operand clauses (default: ``en_core_web_sm``).
    """

    op_verify_timeout: float = field(default=5.0, metadata={"help": "Seconds per gold-answer comparison (ops)."})
    op_spacy_pipeline: str | None = field(default=None, metadata={"help": "spaCy pipeline for operand clauses."})


def make_ops(batch: dict, *, verify_timeout: float, spacy_pipeline: str | None = None) -> dict:
    """``batch -> batch``: operations, their problem regions, execution and validation for each problem."""
    out = dict(batch)
    for key in ("ops", "executed_answer", "validated", "op_status", "op_status_reason", "n_parse_errors"):
        out[key] = []
    # The parse places ops in clauses: problems without spans have no ops, and are not parsed (see clause_regions).
    docs = load_spacy(spacy_pipeline).pipe([(p or "") if s else "" for p, s in zip(batch["problem"], batch["spans"])])
    for problem, gold, spans, regions, doc in zip(
        batch["problem"], batch["answer"], batch["spans"], batch["span_regions"], docs
    ):
        row = validate_trace(problem or "", gold, spans or [], regions or [], doc, verify_timeout)
        for key, value in row.items():
            out[key].append(value)
    return out


def build_op_pairs(
    regions: datasets.DatasetDict, config: OpPairsConfig, num_proc: int | None = None
) -> datasets.DatasetDict:
    """Operations of every split of ``regions`` (a ``clause_regions`` artifact), on ``num_proc`` processes (the
    result is the one process's, row for row: every row keeps its status)."""
    result = datasets.DatasetDict()
    for split, dataset in regions.items():
        require_columns(dataset, INPUT_COLUMNS, stage="op_pairs", upstream="clause_regions")
        result[split] = map_batches(
            dataset,
            make_ops,
            batch_size=64,
            fn_kwargs={"verify_timeout": config.op_verify_timeout, "spacy_pipeline": config.op_spacy_pipeline},
            features=FEATURES,
            num_proc=num_proc,
            preload=functools.partial(load_spacy, config.op_spacy_pipeline),
            desc=f"op_pairs/{split}",
        )
    return result
