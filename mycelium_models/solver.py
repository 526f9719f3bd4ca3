"""``MyceliumSolver``: problem text -> tagger units -> classifier operations -> binder pointers -> DAG -> answer.

No CoT anywhere. The tagger's OP runs become **units** (:func:`mycelium_datasets.dag.units_from_regions`: the same
function that makes the ``bindings`` artifact's units from the reference regions); the classifier names each unit's
operation sequence (``mul+sub``); the operations are laid out unit by unit; the binder points every operand at a
quantity the problem writes, another operation's result or a constant of its vocabulary, and picks the answer
operation; :func:`mycelium_datasets.dag.execute` runs the DAG in dependency order.

Any piece can be given instead of predicted, which is how the evaluation's **oracle ladder** swaps in one learned
student at a time: ``solve(problems, units=..., operations=...)`` takes reference units and operations (the binder
alone is learned), ``units=`` alone takes reference units (the classifier and the binder are learned), and
:meth:`MyceliumSolver.execute` runs a reference binding through the same executor.

Every step is recorded in the returned trace (units, operations, pointers, values, the answer operation), so a
failure can be attributed to a stage: ``SEGMENTATION`` (no unit), ``EXTRACTION`` (an operation got no operand),
``EXECUTION`` (the DAG cannot be run, e.g. a division by zero). A bad problem in a batch gives ``answer: None`` with
its failing stage, never an exception.

:meth:`MyceliumSolver.from_pretrained` reads a folder holding ``tagger/``, ``classifier/`` and ``binder/`` (a run's
``DIR/models``) or the Hub id of a released solver, one model repo laid out the same way (``mycelium release RUN
--repo ORG/NAME`` makes ``ORG/NAME-solver``)::

    solver = MyceliumSolver.from_pretrained("ORG/NAME-solver", revision="v1.0.0")
"""

from __future__ import annotations

from pathlib import Path

import torch

from mycelium_datasets.arith import format_value
from mycelium_datasets.dag import DagError, execute, units_from_regions
from mycelium_datasets.numbers import quantities as problem_quantities
from mycelium_models.students import REPO_ID, STUDENTS

LABEL_JOIN = "+"  # the classifier's label joins a unit's operations (mycelium_datasets.student_sets.LABEL_JOIN)
STUDENT_NAMES = tuple(STUDENTS)  # each student's subfolder: tagger, classifier, binder


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
        max_length: int = 256,
    ):
        self.tagger, self.tagger_tokenizer = tagger.to(device).eval(), tagger_tokenizer
        self.classifier, self.classifier_tokenizer = classifier.to(device).eval(), classifier_tokenizer
        self.binder, self.binder_tokenizer = binder.to(device).eval(), binder_tokenizer
        self.device = device
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls, models: str | Path, device: str | None = None, revision: str | None = None
    ) -> MyceliumSolver:
        """Load the three students (safetensors; no ``trust_remote_code``) from ``models``: a folder holding
        ``tagger/``, ``classifier/`` and ``binder/`` (a run's ``DIR/models``), or the Hub id ``ORG/NAME`` of a
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
        for name in STUDENT_NAMES:
            for needed in ("config.json", "model.safetensors"):
                if not (models_dir / name / needed).is_file():
                    raise ModelsNotFoundError(
                        f"{models_dir / name / needed} is missing; train it with: mycelium train {name} --run_dir DIR"
                        if where is None
                        else f"{where} has no {name}/{needed}: not a released Mycelium solver (release one with "
                        "`mycelium release RUN --repo ORG/NAME`)"
                    )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(
            AutoModelForTokenClassification.from_pretrained(models_dir / "tagger"),
            AutoTokenizer.from_pretrained(models_dir / "tagger"),
            AutoModelForSequenceClassification.from_pretrained(models_dir / "classifier"),
            AutoTokenizer.from_pretrained(models_dir / "classifier"),
            AutoModel.from_pretrained(models_dir / "binder"),
            AutoTokenizer.from_pretrained(models_dir / "binder"),
            device,
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
                    self.max_length,
                    config.max_operands,
                )
                for i in chunk
            ]
            batch = {k: v.to(self.device) for k, v in collate(features).items()}
            for i, decoded in zip(chunk, self.binder.decode(**batch)):
                results[i] = decoded
        return results

    # -- solving ------------------------------------------------------------------------------------------------------

    def solve(
        self,
        problems: list[str],
        units: list[list[tuple[int, int]]] | None = None,
        operations: list[list[dict]] | None = None,
    ) -> list[dict]:
        """Answer each problem; returns per problem its trace: ``answer``, ``stage`` (the first failing stage, or
        ``None`` when an answer was produced), ``units``, ``ops``, ``answer_op``.

        ``units`` (per problem, character ranges) replaces the tagger and ``operations`` (per problem, ``{op,
        unit}`` in layout order) the classifier: the oracle ladder's rungs."""
        traces = [
            {"problem": p, "answer": None, "stage": None, "reason": "", "units": [], "ops": [], "answer_op": -1}
            for p in problems
        ]
        valid = [i for i, p in enumerate(problems) if isinstance(p, str) and p.strip()]
        for i in set(range(len(problems))) - set(valid):
            traces[i]["stage"] = "SEGMENTATION"
            traces[i]["reason"] = (
                "empty problem" if isinstance(problems[i], str) else f"not a string: {type(problems[i]).__name__}"
            )
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
