"""``MyceliumSolver``: problem text -> the step decoder's program (one joint decode of the whole DAG) -> answer.

No CoT anywhere. The **step decoder** (:class:`mycelium_models.modeling_mycelium.MyceliumStepDecoder`) writes the
whole program in one decode: each step picks two operands (a quantity the problem writes, a constant of its
vocabulary or an earlier step's result) and an operation together, scored jointly, and a beam search
(:func:`mycelium_models.steps.search`) executes every partial program with exact fractions, so no beam survives a
division by zero and none stops before it used a problem quantity. The tagger's OP runs (units, via
:func:`mycelium_datasets.dag.units_from_regions`) are shown to the decoder as regions: which quantities sit in
operation text. Nothing commits before the program is complete: the chain it replaced, tagger units ->
classifier operation sequences -> binder pointers (:meth:`MyceliumSolver.solve_chain`), lost a factor at every
student that committed before the next.

The chain stays for the evaluation's **oracle ladder**, which swaps in one learned student at a time:
``solve(problems, units=..., operations=...)`` takes reference units and operations (the binder alone is learned),
``solve_chain(problems, units=...)`` reference units (the classifier and the binder are learned), and
:meth:`MyceliumSolver.execute` runs a reference binding through the same executor; ``solve_with_decoder(problems,
units=..., regions=...)`` gives the decoder reference regions, the tagger's, or none.

Every step is recorded in the returned trace (units, operations, pointers, values, the answer operation), so a
failure can be attributed to a stage: ``SEGMENTATION`` (no unit, or a problem longer than a student reads),
``EXTRACTION`` (no operand), ``EXECUTION`` (no program runs, e.g. every one divides by zero). A bad problem in a
batch gives ``answer: None`` with its failing stage, never an exception.

:meth:`MyceliumSolver.from_pretrained` reads a folder holding ``tagger/``, ``classifier/``, ``binder/`` and
``decoder/`` (a run's ``DIR/models``) or the Hub id of a released solver, one model repo laid out the same way
(``mycelium release RUN --repo ORG/NAME`` makes ``ORG/NAME-solver``)::

    solver = MyceliumSolver.from_pretrained("ORG/NAME-solver", revision="v1.0.0")
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from mycelium_datasets.arith import format_value
from mycelium_datasets.dag import DagError, execute, unit_of, units_from_regions
from mycelium_datasets.numbers import quantities as problem_quantities
from mycelium_models.students import REPO_ID, STUDENTS

LABEL_JOIN = "+"  # the classifier's label joins a unit's operations (mycelium_datasets.student_sets.LABEL_JOIN)
STUDENT_NAMES = tuple(STUDENTS)  # each student's subfolder: tagger, classifier, binder, decoder
REQUIRED_STUDENTS = ("tagger", "classifier", "binder")  # a folder trained before the decoder answers with the chain

logger = logging.getLogger(__name__)

Problems = str | Iterable[str]  # one problem, or a batch of them


def as_batch(problems: Problems, *per_problem) -> tuple[bool, list, tuple]:
    """``(single, batch, per_problem)``: a string is one problem (as a transformers pipeline takes one), so it is
    wrapped in a batch of one together with each of its ``per_problem`` arguments (``units``, ``operations``:
    that problem's alone, or `None`); any other iterable (a list, a tuple, a dataset's column) is a batch. Bytes, a
    mapping or a non-iterable is a `TypeError`: nothing is ever read character by character or key by key."""
    if isinstance(problems, str):
        return True, [problems], tuple(None if arg is None else [arg] for arg in per_problem)
    if isinstance(problems, (bytes, bytearray, Mapping)) or not isinstance(problems, Iterable):
        raise TypeError(f"problems must be a string or a list of strings, got {type(problems).__name__}")
    return False, list(problems), per_problem


class ModelsNotFoundError(FileNotFoundError):
    """The solver's students cannot be found: no such folder, no such repo or revision, or the Hub unreachable. The
    message is one line naming what was asked for (the folder, or the repo id and revision)."""


def resolve_models(models: str | Path, revision: str | None = None) -> tuple[Path, str | None]:
    """The local folder that holds ``tagger/``, ``classifier/`` and ``binder/``, and, when it was downloaded, how to
    name it in messages (``ORG/NAME@revision``; ``None`` for a local folder).

    ``models`` is a folder when one exists at that path; otherwise a string shaped ``ORG/NAME`` is a Hub repo id,
    fetched with :func:`download_models`; anything else is an error that says what was expected."""
    if Path(models).is_dir():
        if revision is not None:
            raise ModelsNotFoundError(
                f"{models} is a local folder: --revision/revision= names a version of a Hub repo id (ORG/NAME)"
            )
        return Path(models), None
    if isinstance(models, str) and REPO_ID.match(models):
        return download_models(models, revision), f"{models}@{revision or 'main'}"
    raise ModelsNotFoundError(
        f"{models} is neither a folder nor a Hub repo id: expected a models folder with "
        f"{', '.join(f'{name}/' for name in STUDENT_NAMES)} (e.g. DIR/models) or a released solver's ORG/NAME "
        "(e.g. my-org/mycelium-demo-solver)"
    )


def download_models(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of the solver repo ``repo_id`` at ``revision`` (only its student subfolders), through
    ``huggingface_hub.snapshot_download`` (looked up when called: the Hub cache, ``HF_TOKEN`` and
    ``HF_HUB_OFFLINE`` work as everywhere in the Hub's libraries)."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=[f"{name}/*" for name in STUDENT_NAMES]
        )
    except Exception as exc:  # noqa: BLE001 - every Hub or network failure is reported as one line
        if isinstance(exc, RevisionNotFoundError):
            why = f"it has no revision {revision}"
        elif isinstance(exc, RepositoryNotFoundError):
            why = "no such model repo, or it is private or gated (set HF_TOKEN or run `hf auth login`)"
        elif isinstance(exc, LocalEntryNotFoundError):
            why = "the Hub cannot be reached (offline, or HF_HUB_OFFLINE is set) and it is not in the local cache"
        else:
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise ModelsNotFoundError(
            f"cannot load the solver {repo_id} at revision {revision or 'main'} from the Hub: {why} "
            f"(and no folder {repo_id} exists here)"
        ) from None
    return Path(folder)


class MyceliumSolver:
    """The three students together. Build with :meth:`from_pretrained` on a ``models`` folder or a released solver's
    Hub id."""

    def __init__(
        self,
        tagger,
        tagger_tokenizer,
        classifier,
        classifier_tokenizer,
        binder,
        binder_tokenizer,
        device: str = "cpu",
        decoder=None,
        decoder_tokenizer=None,
    ):
        self.tagger, self.tagger_tokenizer = tagger.to(device).eval(), tagger_tokenizer
        self.classifier, self.classifier_tokenizer = classifier.to(device).eval(), classifier_tokenizer
        self.binder, self.binder_tokenizer = binder.to(device).eval(), binder_tokenizer
        self.decoder = decoder.to(device).eval() if decoder is not None else None
        self.decoder_tokenizer = decoder_tokenizer
        self.device = device

    @classmethod
    def from_pretrained(
        cls, models: str | Path, device: str | None = None, revision: str | None = None
    ) -> MyceliumSolver:
        """Load the students (safetensors; no ``trust_remote_code``) from ``models``: a folder holding
        ``tagger/``, ``classifier/``, ``binder/`` and ``decoder/`` (a run's ``DIR/models``; without ``decoder/``, a
        folder trained before students 2.0.0, the solver answers with the chain), or the Hub id ``ORG/NAME`` of a
        released solver (``mycelium release``), downloaded with ``huggingface_hub.snapshot_download`` at
        ``revision`` (a tag such as ``v1.0.0``, a branch or a commit; default the main branch).

        An existing folder wins over a repo id of the same spelling. Anything that cannot be loaded raises
        :class:`ModelsNotFoundError` with a one-line message naming the folder, or the repo id and revision."""
        from transformers import (
            AutoModel,
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        import mycelium_models  # noqa: F401 - registers the Auto classes

        models_dir, where = resolve_models(models, revision)
        is_run_folder = (models_dir / ".mycelium").is_dir() or (models_dir / "models").is_dir()
        if where is None and is_run_folder and not (models_dir / REQUIRED_STUDENTS[0]).is_dir():
            untrained = "" if (models_dir / "models").is_dir() else f" (none yet: `mycelium run --out {models}`)"
            where_models = Path(models) / "models"
            raise ModelsNotFoundError(f"{models} is a run folder; its models are in {where_models}{untrained}")
        for name in REQUIRED_STUDENTS:
            for needed in ("config.json", "model.safetensors"):
                if not (models_dir / name / needed).is_file():
                    raise ModelsNotFoundError(
                        f"{models_dir / name / needed} is missing; train it with: mycelium train {name} --run_dir DIR"
                        if where is None
                        else f"{where} has no {name}/{needed}: not a released Mycelium solver (release one with "
                        "`mycelium release RUN --repo ORG/NAME`)"
                    )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        decoder = models_dir / "decoder"
        has_decoder = (decoder / "config.json").is_file() and (decoder / "model.safetensors").is_file()
        if not has_decoder:
            logger.warning(
                "%s has no decoder/ (trained before students 2.0.0): answering with the tagger -> classifier -> "
                "binder chain; train one with: mycelium train decoder --run_dir DIR",
                models_dir,
            )
        return cls(
            AutoModelForTokenClassification.from_pretrained(models_dir / "tagger"),
            AutoTokenizer.from_pretrained(models_dir / "tagger"),
            AutoModelForSequenceClassification.from_pretrained(models_dir / "classifier"),
            AutoTokenizer.from_pretrained(models_dir / "classifier"),
            AutoModel.from_pretrained(models_dir / "binder"),
            AutoTokenizer.from_pretrained(models_dir / "binder"),
            device,
            decoder=AutoModel.from_pretrained(decoder) if has_decoder else None,
            decoder_tokenizer=AutoTokenizer.from_pretrained(decoder) if has_decoder else None,
        )

    # -- the tagger ---------------------------------------------------------------------------------------------------

    def units(self, problems: list[str], batch_size: int = 16) -> list[list[tuple[int, int]] | None]:
        """The units of each problem: the tagger's contiguous OP runs, grown to whole words and merged where only
        spaces separate them (batched by length, so that little compute goes to padding); `None` for a problem
        longer than the tagger reads (it is not answered from its beginning alone)."""
        order = sorted(range(len(problems)), key=lambda i: len(problems[i]))
        result: list = [None] * len(problems)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, runs in zip(chunk, self._runs([problems[i] for i in chunk])):
                result[i] = None if runs is None else units_from_regions(problems[i], runs)
        return result

    @torch.inference_mode()
    def _runs(self, problems: list[str]) -> list[list[tuple[int, int]] | None]:
        encoded = self.tagger_tokenizer(
            problems, return_offsets_mapping=True, padding=True, truncation=True, return_tensors="pt"
        )
        truncated = [bool(e.overflowing) for e in encoded.encodings]
        offsets = encoded.pop("offset_mapping").tolist()
        logits = self.tagger(**{k: v.to(self.device) for k, v in encoded.items()}).logits
        labels = logits.argmax(-1).tolist()
        result = []
        for row_labels, row_offsets, cut in zip(labels, offsets, truncated):
            if cut:
                result.append(None)
                continue
            runs, current = [], None
            for label, (a, b) in zip(row_labels, row_offsets):
                if b <= a:  # special and padding tokens
                    continue
                if label == 1:
                    current = (current[0], b) if current else (a, b)
                elif current:
                    runs.append(current)
                    current = None
            if current:
                runs.append(current)
            result.append(runs)
        return result

    # -- the classifier -----------------------------------------------------------------------------------------------

    def classify(self, texts: list[str], batch_size: int = 32) -> list[list[str]]:
        """The operations of each unit text, in order (batched by length)."""
        return [list(ranked[0]) for ranked in self.rank_operations(texts, k=1, batch_size=batch_size)]

    @torch.inference_mode()
    def rank_operations(self, texts: list[str], k: int = 3, batch_size: int = 32) -> list[list[tuple[str, ...]]]:
        """The ``k`` most probable operation sequences of each text (``("mul", "sub")``), most probable first
        (batched by length). This is what op parsing's tier 3 reads a CoT step it cannot parse with
        (:class:`mycelium_datasets.op_graph.OpFallback`)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ranked: list = [None] * len(texts)
        id2label = self.classifier.config.id2label
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = self.classifier_tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, return_tensors="pt"
            )
            logits = self.classifier(**{key: v.to(self.device) for key, v in encoded.items()}).logits
            top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices.tolist()
            for i, labels in zip(chunk, top):
                ranked[i] = [tuple(id2label[int(label)].split(LABEL_JOIN)) for label in labels]
        return ranked

    # -- the binder ---------------------------------------------------------------------------------------------------

    def bind(
        self, problems: list[str], units: list[list[tuple[int, int]]], operations: list[list[dict]], batch_size=16
    ):
        """Pointers for every operation (``{op, unit}``) of every problem, and its answer operation:
        ``[{"ops": [[(kind, index), ...], ...], "answer_op": int}]`` (see :meth:`MyceliumBinder.decode`)."""
        from mycelium_models.pointers import BinderCollator, encode

        config = self.binder.config
        collate = BinderCollator(self.binder_tokenizer.pad_token_id, config.max_operands)
        results: list = [None] * len(problems)
        order = sorted(range(len(problems)), key=lambda i: len(problems[i]))
        for start in range(0, len(order), batch_size):
            chunk = [i for i in order[start : start + batch_size] if operations[i]]
            for i in order[start : start + batch_size]:
                if not operations[i]:
                    results[i] = {"ops": [], "answer_op": -1}
            if not chunk:
                continue
            features = [
                encode(
                    self.binder_tokenizer,
                    problems[i],
                    problem_quantities(problems[i]),
                    units[i],
                    operations[i],
                    config.op_names,
                    config.max_input_tokens,
                    config.max_operands,
                )
                for i in chunk
            ]
            batch = {k: v.to(self.device) for k, v in collate(features).items()}
            for i, decoded in zip(chunk, self.binder.decode(**batch)):
                results[i] = decoded
        return results

    # -- the step decoder ---------------------------------------------------------------------------------------------

    def decode(
        self,
        problems: list[str],
        units: list[list[tuple[int, int]] | None],
        num_beams: int | None = None,
        rules: tuple[str, ...] | None = None,
        batch_size: int = 16,
    ):
        """The step decoder's best program of each problem (:func:`mycelium_models.steps.search`), its quantities
        shown inside or outside ``units`` (``None``: unknown)."""
        from mycelium_models.steps import RULES, StepCollator, encode, node_values, search

        config = self.decoder.config
        collate = StepCollator(self.decoder_tokenizer.pad_token_id)
        results: list = [None] * len(problems)
        order = sorted(range(len(problems)), key=lambda i: len(problems[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            found = [problem_quantities(problems[i]) for i in chunk]
            features = [
                encode(
                    self.decoder_tokenizer,
                    problems[i],
                    q,
                    units[i],
                    config.max_input_tokens,
                    None,
                    config.max_quantities,
                )
                for i, q in zip(chunk, found)
            ]
            batch = {k: v.to(self.device) for k, v in collate(features).items()}
            n_q = batch["quantity_spans"].shape[1]
            values = [
                node_values(q[: len(f["quantity_spans"])], config.constants, n_q) for q, f in zip(found, features)
            ]
            programs = search(
                self.decoder,
                batch,
                values,
                [problems[i] for i in chunk],
                num_beams=num_beams,
                rules=RULES if rules is None else rules,
                mentions=[[start for _, start, _ in q[: len(f["quantity_spans"])]] for q, f in zip(found, features)],
            )
            for i, program in zip(chunk, programs):
                results[i] = program
        return results

    def solve_with_decoder(
        self,
        problems: Problems,
        units: list[list[tuple[int, int]]] | None = None,
        regions: bool = True,
        num_beams: int | None = None,
        rules: tuple[str, ...] | None = None,
    ) -> list[dict] | dict:
        """Answer each problem with the step decoder (one decode of the whole program); the units (the tagger's,
        or ``units`` when given) tell the decoder which quantities lie in operation text, unless ``regions`` is
        False. Returns the same traces as :meth:`solve` (one trace for one problem given as a string); each step is
        one operation with two operands."""
        single, problems, (units,) = as_batch(problems, units)
        traces = self._solve_with_decoder(problems, units, regions, num_beams, rules)
        return traces[0] if single else traces

    def _solve_with_decoder(self, problems, units, regions, num_beams, rules) -> list[dict]:
        from mycelium_models.steps import pointer

        traces = self._empty_traces(problems)
        for trace in traces:
            trace["decoder"] = True
        valid = [i for i, t in enumerate(traces) if t["stage"] is None]
        if not valid:
            return traces
        limit = self.decoder.config.max_input_tokens
        for i in valid:  # not answered from its beginning alone
            if len(self.decoder_tokenizer(problems[i], truncation=False)["input_ids"]) > limit:
                traces[i]["stage"], traces[i]["reason"] = (
                    "SEGMENTATION",
                    f"longer than the decoder reads ({limit} tokens)",
                )
        valid = [i for i in valid if traces[i]["stage"] is None]
        if not valid:
            return traces
        texts = [problems[i] for i in valid]
        found = self.units(texts) if units is None else [units[i] for i in valid]
        for i, problem_units in zip(valid, found):
            traces[i]["units"] = [
                {"char_start": a, "char_end": b, "text": problems[i][a:b], "ops": []} for a, b in problem_units or []
            ]
        shown = [(u or None) if regions else None for u in found]
        programs = self.decode(texts, shown, num_beams=num_beams, rules=rules)
        for i, program, problem_units in zip(valid, programs, found):
            trace = traces[i]
            if not program.steps:
                if not problem_quantities(problems[i]):
                    trace["stage"], trace["reason"] = (
                        "EXTRACTION",
                        "the problem writes no number to take as an operand",
                    )
                else:
                    trace["stage"], trace["reason"] = "EXECUTION", "no complete program survived execution"
                continue
            pointers = [[pointer(left), pointer(right)] for left, right, _ in program.steps]
            spans = problem_units or []
            quantity_spans = [(a, b) for _, a, b in problem_quantities(problems[i])]
            operations = []
            for step, operands in zip(program.steps, pointers):
                unit = -1
                for p in operands:  # the step sits in the unit that holds its first problem quantity
                    if p["kind"] == "quantity" and unit < 0:
                        a, _ = quantity_spans[p["index"]]
                        unit = unit_of(spans, a)
                operations.append({"op": self.decoder.config.op_names[step[2]], "unit": unit})
            for op in operations:
                if op["unit"] >= 0:
                    trace["units"][op["unit"]]["ops"].append(op["op"])
            execute_into_trace(
                problems[i], trace, operations, pointers, len(operations) - 1, list(self.decoder.config.constants)
            )
            trace["score"] = program.score
            trace["rank"] = program.rank
        return traces

    # -- solving ------------------------------------------------------------------------------------------------------

    @staticmethod
    def _empty_traces(problems: list) -> list[dict]:
        traces = [
            {"problem": p, "answer": None, "stage": None, "reason": "", "units": [], "ops": [], "answer_op": -1}
            for p in problems
        ]
        for trace, p in zip(traces, problems):
            if not (isinstance(p, str) and p.strip()):
                trace["stage"] = "SEGMENTATION"
                trace["reason"] = "empty problem" if isinstance(p, str) else f"not a string: {type(p).__name__}"
        return traces

    def solve(
        self,
        problems: Problems,
        units: list[list[tuple[int, int]]] | None = None,
        operations: list[list[dict]] | None = None,
    ) -> list[dict] | dict:
        """Answer each problem; returns per problem its trace: ``answer``, ``stage`` (the first failing stage, or
        ``None`` when an answer was produced), ``units``, ``ops``, ``answer_op``.

        ``problems`` is a list of problem texts (a list of traces comes back), or one problem as a string (its
        trace comes back, as a transformers pipeline answers one input; ``units`` and ``operations`` are then
        that problem's own).

        With a step decoder (every models folder trained since students 2.0.0) and no ``operations``, the decoder
        answers (:meth:`solve_with_decoder`, the tagger's units as its regions). ``units`` (per problem, character
        ranges) replaces the tagger and ``operations`` (per problem, ``{op, unit}`` in layout order) the
        classifier, and then the tagger -> classifier -> binder chain answers: the oracle ladder's rungs."""
        if self.decoder is not None and operations is None:
            return self.solve_with_decoder(problems, units)
        return self.solve_chain(problems, units, operations)

    def solve_chain(
        self,
        problems: Problems,
        units: list[list[tuple[int, int]]] | None = None,
        operations: list[list[dict]] | None = None,
    ) -> list[dict] | dict:
        """Answer each problem with the tagger -> classifier -> binder chain, each committing before the next
        (the design the step decoder replaced, kept for the ladder's comparison); arguments and results as
        :meth:`solve`."""
        single, problems, (units, operations) = as_batch(problems, units, operations)
        traces = self._solve_chain(problems, units, operations)
        return traces[0] if single else traces

    def _solve_chain(self, problems, units, operations) -> list[dict]:
        traces = self._empty_traces(problems)
        valid = [i for i, t in enumerate(traces) if t["stage"] is None]
        if not valid:
            return traces
        found = self.units([problems[i] for i in valid]) if units is None else [units[i] for i in valid]
        ready = []
        for i, problem_units in zip(valid, found):
            if problem_units is None:
                traces[i]["stage"] = "SEGMENTATION"
                traces[i]["reason"] = f"longer than the tagger reads ({self.tagger_tokenizer.model_max_length} tokens)"
            elif not problem_units:
                traces[i]["stage"] = "SEGMENTATION"
                traces[i]["reason"] = "the tagger found no operation unit"
            else:
                ready.append(i)
                traces[i]["units"] = [
                    {"char_start": a, "char_end": b, "text": problems[i][a:b], "ops": []} for a, b in problem_units
                ]
        if operations is None:
            flat = [(i, k) for i in ready for k in range(len(traces[i]["units"]))]
            labels = self.classify([traces[i]["units"][k]["text"] for i, k in flat])
            for (i, k), ops in zip(flat, labels):
                traces[i]["units"][k]["ops"] = ops
        else:
            for i in ready:
                for op in operations[i]:
                    traces[i]["units"][op["unit"]]["ops"].append(op["op"])
        laid_out = {
            i: [{"op": name, "unit": k} for k, unit in enumerate(traces[i]["units"]) for name in unit["ops"]]
            for i in ready
        }
        bound = self.bind(
            [problems[i] for i in ready], [self._spans(traces[i]) for i in ready], list(laid_out.values())
        )
        for i, decoded in zip(ready, bound):
            pointers = [[{"kind": kind, "index": index} for kind, index in ops] for ops in decoded["ops"]]
            self.execute(problems[i], traces[i], laid_out[i], pointers, decoded["answer_op"])
        return traces

    @staticmethod
    def _spans(trace: dict) -> list[tuple[int, int]]:
        return [(u["char_start"], u["char_end"]) for u in trace["units"]]

    def execute(self, problem: str, trace: dict, operations: list[dict], pointers: list[list[dict]], answer_op: int):
        """Run one problem's DAG (``operations`` ``{op, unit}`` in layout order, each with its operand
        ``pointers`` ``{kind, index}``) through :func:`mycelium_datasets.dag.execute`, recording every step in
        ``trace`` (which holds the problem's ``units``)."""
        constants = list(self.binder.config.constants)
        return execute_into_trace(problem, trace, operations, pointers, answer_op, constants)


def execute_into_trace(
    problem: str,
    trace: dict,
    operations: list[dict],
    pointers: list[list[dict]],
    answer_op: int,
    constants: list[str],
) -> dict:
    """Execute a bound DAG and record it in ``trace``: ``ops`` (operation, unit, its text, operand values and
    pointers with their provenance, result), ``answer_op``, ``answer``, and the failing ``stage`` if any."""
    found = problem_quantities(problem)
    ops = [{"op": o["op"], "operands": list(p)} for o, p in zip(operations, pointers)]
    trace["answer_op"] = answer_op
    units = trace["units"]
    values: list = []
    try:
        if not ops:
            raise DagError("no operation")
        empty = [k for k, op in enumerate(ops) if not op["operands"]]
        if empty:
            trace["stage"], trace["reason"] = "EXTRACTION", f"operations {empty} found no operand"
        else:
            answer, values = execute(ops, answer_op, found, constants)
            trace["answer"] = format_value(answer)
    except DagError as exc:
        trace["stage"], trace["reason"] = "EXECUTION", str(exc)
    trace["ops"] = []
    for k, (operation, op) in enumerate(zip(operations, ops)):
        unit = units[operation["unit"]] if 0 <= operation["unit"] < len(units) else None
        described = []
        for p in op["operands"]:
            entry = {"kind": p["kind"], "index": p["index"], "value": None, "char_start": -1, "char_end": -1}
            if p["kind"] == "quantity" and 0 <= p["index"] < len(found):
                value, entry["char_start"], entry["char_end"] = found[p["index"]]
                entry["value"] = format_value(value)
            elif p["kind"] == "constant":
                entry["value"] = constants[p["index"]] if 0 <= p["index"] < len(constants) else p.get("value")
            elif p["kind"] == "op" and values:
                entry["value"] = format_value(values[p["index"]])
            described.append(entry)
        trace["ops"].append(
            {
                "op": op["op"],
                "unit": operation["unit"],
                "char_start": unit["char_start"] if unit else -1,
                "char_end": unit["char_end"] if unit else -1,
                "region": unit["text"] if unit else "",
                "operands": [e["value"] if e["value"] is not None else "?" for e in described],
                "pointers": described,
                "result": format_value(values[k]) if values else None,
            }
        )
    return trace
