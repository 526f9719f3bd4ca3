"""Builder of the ``problems`` artifact (schema, config and readers live in ``mycelium_datasets.problems``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets

from mycelium_datasets import problems
from mycelium_datasets.builders.base import ArtifactBuilder
from mycelium_datasets.provenance import source_provenance


class ProblemsBuilder(ArtifactBuilder):
    NAME = "problems"
    VERSION = datasets.Version(problems.VERSION)
    CONFIG_CLASS = problems.ProblemsConfig
    FEATURES = problems.FEATURES
    DESCRIPTION = (
        "Math word problems with their gold answers (normalized: `#### 1,234` -> `1234`; MATH: the last `\\boxed{}`) "
        "and reference solutions, split into `train` and `test` by template where the source has templates."
    )
    LIMITATIONS = [
        "gsm_symbolic templates were written from GSM8K *test* problems: never train on them for a GSM8K-test "
        "evaluation.",
        "The instruction reasoning-gym appends to gsm_symbolic questions ('Give the result as your final answer. Do "
        "not include units.') is removed from `problem`.",
    ]
    STAT_COLUMNS = ("status", "shape", "source")
    TASK_CATEGORIES = ("question-answering", "text-generation")
    LINEAGE_FIELDS = ("source",)

    def own_provenance(self, upstream: dict) -> dict:
        return {"source": source_provenance(self.config)}

    def extra_identity(self) -> dict:
        files = [part.source for part in self.config.parts() if Path(part.source).is_file()]
        if len(files) == 1 and files[0] == self.config.source:
            return {"source_sha256": hashlib.sha256(Path(files[0]).read_bytes()).hexdigest()}
        if files:  # a mix: every file's digest, by its name in the mix
            return {"source_sha256": {f: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}}
        return {}

    def _build(self, upstream, work_dir, info):
        dataset = problems.build_problems(self.config)
        rows = sum(len(d) for d in dataset.values())
        templates = {t for d in dataset.values() for t in d["template"] if t >= 0}
        test_templates = sorted({t for t in dataset["test"]["template"] if t >= 0}) if "test" in dataset else []
        extra = [f"templates: {len(templates)}; held out for test: {test_templates or 'none'}"] if templates else []
        return dataset, rows, {}, extra
