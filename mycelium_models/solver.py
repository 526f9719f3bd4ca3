"""``MyceliumSolver``: problem text -> tagger regions -> classifier ops -> operands -> DAG -> answer. No CoT.

Every step is recorded in the returned trace (regions, ops, operands, values), so a failure can be attributed to a
stage: ``SEGMENTATION`` (no region found), ``CLASSIFICATION`` (no operation for a region), ``EXTRACTION`` (a region
has too few operands), ``EXECUTION`` (the DAG cannot be run, e.g. a division by zero). A bad problem in a batch gives
``answer: None`` with its failing stage, never an exception.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch

from mycelium_datasets.arith import ParseError, apply, format_value
from mycelium_datasets.numbers import problem_numbers

UNARY = {"sqrt", "neg", "percent", "floor", "ceil", "abs", "factorial"}


class MyceliumSolver:
    """The two students together. Build with :meth:`from_pretrained` on a ``models`` folder."""

    def __init__(self, tagger, tagger_tokenizer, classifier, classifier_tokenizer, device: str = "cpu"):
        self.tagger, self.tagger_tokenizer = tagger.to(device).eval(), tagger_tokenizer
        self.classifier, self.classifier_tokenizer = classifier.to(device).eval(), classifier_tokenizer
        self.device = device

    @classmethod
    def from_pretrained(cls, models_dir: str | Path, device: str | None = None) -> MyceliumSolver:
        """Load ``models_dir/tagger`` and ``models_dir/classifier`` (safetensors; no ``trust_remote_code``)."""
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

        import mycelium_models  # noqa: F401 - registers the Auto classes

        models_dir = Path(models_dir)
        for name in ("tagger", "classifier"):
            for needed in ("config.json", "model.safetensors"):
                if not (models_dir / name / needed).is_file():
                    raise FileNotFoundError(
                        f"{models_dir / name / needed} is missing; train it with: mycelium train {name} --run_dir DIR"
                    )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(
            AutoModelForTokenClassification.from_pretrained(models_dir / "tagger"),
            AutoTokenizer.from_pretrained(models_dir / "tagger"),
            AutoModelForSequenceClassification.from_pretrained(models_dir / "classifier"),
            AutoTokenizer.from_pretrained(models_dir / "classifier"),
            device,
        )

    def regions(self, problems: list[str], batch_size: int = 16) -> list[list[tuple[int, int]] | None]:
        """Character ranges of the contiguous OP runs the tagger finds in each problem (batched by length, so that
        little compute goes to padding); `None` for a problem longer than the tagger reads (it is not answered from
        its beginning alone)."""
        order = sorted(range(len(problems)), key=lambda i: len(problems[i]))
        result: list = [None] * len(problems)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, runs in zip(chunk, self._regions([problems[i] for i in chunk])):
                result[i] = None if runs is None else self.snap_to_words(problems[i], runs)
        return result

    @torch.inference_mode()
    def _regions(self, problems: list[str]) -> list[list[tuple[int, int]] | None]:
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

    @staticmethod
    def snap_to_words(text: str, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Grow each OP run to whole words (a run may end inside a word: "The ve|nding") and merge runs that then
        touch or are separated by spaces only."""
        snapped: list[tuple[int, int]] = []
        for a, b in runs:
            while a > 0 and text[a - 1].isalnum():
                a -= 1
            while b < len(text) and text[b].isalnum():
                b += 1
            if snapped and not text[snapped[-1][1] : a].strip():
                snapped[-1] = (snapped[-1][0], b)
            else:
                snapped.append((a, b))
        return snapped

    @torch.inference_mode()
    def classify(self, texts: list[str], batch_size: int = 32) -> list[str]:
        """The operation of each region text (batched by length)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        labels: list = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = self.classifier_tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, return_tensors="pt"
            )
            logits = self.classifier(**{k: v.to(self.device) for k, v in encoded.items()}).logits
            for i, label in zip(chunk, logits.argmax(-1).tolist()):
                labels[i] = self.classifier.config.id2label[int(label)]
        return labels

    def solve(self, problems: list[str]) -> list[dict]:
        """Answer each problem; returns per problem ``{answer, stage, regions, ops}`` (``stage`` names the first
        failing stage, or ``None`` when an answer was produced)."""
        traces = [{"problem": p, "answer": None, "stage": None, "regions": [], "ops": []} for p in problems]
        valid = [i for i, p in enumerate(problems) if isinstance(p, str) and p.strip()]
        for i in set(range(len(problems))) - set(valid):
            traces[i]["stage"] = "SEGMENTATION"
            traces[i]["reason"] = (
                "empty problem" if isinstance(problems[i], str) else f"not a string: {type(problems[i]).__name__}"
            )
        if not valid:
            return traces
        read = list(zip(valid, self.regions([problems[i] for i in valid])))
        for i, regions in read:
            if regions is None:
                traces[i]["stage"] = "SEGMENTATION"
                traces[i]["reason"] = f"longer than the tagger reads ({self.tagger_tokenizer.model_max_length} tokens)"
        valid = [i for i, regions in read if regions is not None]
        all_regions = [regions for _, regions in read if regions is not None]
        flat = [(i, r) for i, regions in zip(valid, all_regions) for r in regions]
        labels = self.classify([problems[i][a:b] for i, (a, b) in flat])
        by_problem: dict[int, list] = {}
        for (i, region), label in zip(flat, labels):
            by_problem.setdefault(i, []).append((region, label))
        for i, regions in zip(valid, all_regions):
            trace = traces[i]
            labelled = dict(by_problem.get(i, []))
            trace["regions"] = [
                {"char_start": a, "char_end": b, "text": problems[i][a:b], "op": labelled.get((a, b))}
                for a, b in regions
            ]
            try:
                self._execute(problems[i], by_problem.get(i, []), trace)
            except Exception as exc:  # noqa: BLE001 - one bad problem never breaks the batch
                trace["stage"], trace["reason"] = "EXECUTION", f"{type(exc).__name__}: {exc}"
        return traces

    @staticmethod
    def _execute(problem: str, regions: list, trace: dict) -> None:
        """Regions in text order, each one operation. Operands: numbers the region writes (digits before number
        words), after any number carried from an earlier region that could not form an operation alone; a region
        short of operands takes the last result (or, for an add / sub with no number of its own, the last two results:
        "how many in all?"). A region
        still short of operands carries its numbers forward (or is skipped when it has none), as recorded in
        ``trace["skipped"]``; the answer is the last operation's value."""
        if not regions:
            trace["stage"], trace["reason"] = "SEGMENTATION", "the tagger found no operation region"
            return
        numbers = problem_numbers(problem)
        results: list[Fraction] = []
        pending: list[dict] = []
        trace["skipped"] = []
        for (a, b), op in regions:
            # one operand per written number: "10%" is read as 10 and as 0.1 at the same offsets; keep the first
            by_start: dict[int, tuple] = {}
            for n in numbers:
                if a <= n[1] < b:
                    by_start.setdefault(n[1], n)
            inside = [by_start[k] for k in sorted(by_start)]
            digits = [n for n in inside if problem[n[1]].isdigit()]
            found = [
                {"value": n[0], "source": "problem", "char_start": n[1], "char_end": n[2], "op_index": -1}
                for n in (digits or inside)
            ]
            arity = 1 if op in UNARY else 2
            operands = pending + found
            operands = operands if op in ("add", "mul") else operands[:arity]

            def earlier(k: int) -> dict:
                return {"value": results[k], "source": "op", "char_start": -1, "char_end": -1, "op_index": k}

            if results and len(operands) < arity:
                operands = [earlier(len(results) - 1), *operands]  # an earlier result completes the operation
            if not found and not pending and op in ("add", "sub") and len(results) >= 2:
                operands = [earlier(len(results) - 2), earlier(len(results) - 1)]  # "how many in all?"
            if len(operands) < arity:
                pending = operands if found else pending
                trace["skipped"].append(
                    {"region": problem[a:b], "op": op, "reason": f"{len(operands)} operand(s) for {op}"}
                )
                continue
            pending = []
            try:
                value = apply(op, [o["value"] for o in operands])
            except ParseError as exc:
                trace["stage"], trace["reason"] = "EXECUTION", str(exc)
                return
            results.append(value)
            trace["ops"].append(
                {
                    "op": op,
                    "operands": [format_value(o["value"]) for o in operands],
                    "operand_sources": [{**o, "value": format_value(o["value"])} for o in operands],
                    "result": format_value(value),
                    "region": problem[a:b],
                    "char_start": a,
                    "char_end": b,
                }
            )
        if not results:
            trace["stage"] = "EXTRACTION"
            trace["reason"] = "no region had enough operands for its operation: " + "; ".join(
                f"{x['region']!r} ({x['reason']})" for x in trace["skipped"]
            )
            return
        trace["answer"] = format_value(results[-1])
