"""Mycelium datasets: every artifact's schema, config and transforms, plus the CLI and the pipeline.

Each artifact has one module (``problems``, ``cot_traces``, ...) holding its ``FEATURES``, its config dataclass and
its pure ``batch -> batch`` transforms; the versioned builders are in ``mycelium_datasets.builders``.
"""

__version__ = "0.1.0"
