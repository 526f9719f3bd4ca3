"""Mycelium models: the students and the end-to-end job, the upper layer.

The students (``modeling_mycelium``: ``MyceliumTagger``, ``MyceliumOpClassifier``, registered with the Auto classes;
``students``: the registry of which artifact trains which student), their Trainer recipes (``train``, ``stage``),
the no-CoT ``solver``, the ``evaluation`` with its error attribution, the self-improving ``loop``, and the job that
drives everything: the ``cli`` (``mycelium``), ``job`` (``mycelium run`` and its presets in ``configs/``),
``report`` and ``release``. It reads the artifacts through ``mycelium_datasets``, which never imports it back.
"""

from mycelium_models.backbone import load_backbone, resolve_backbone
from mycelium_models.modeling_mycelium import (
    MyceliumOpClassifier,
    MyceliumOpClassifierConfig,
    MyceliumTagger,
    MyceliumTaggerConfig,
)

__all__ = [
    "MyceliumOpClassifier",
    "MyceliumOpClassifierConfig",
    "MyceliumTagger",
    "MyceliumTaggerConfig",
    "load_backbone",
    "resolve_backbone",
]
