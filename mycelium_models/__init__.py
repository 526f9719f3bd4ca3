"""Mycelium models: the students and the end-to-end job, the upper layer.

The students (``modeling_mycelium``: ``MyceliumTagger``, ``MyceliumOpClassifier``, registered with the Auto classes;
``students``: the registry of which artifact trains which student), their Trainer recipes (``train``, ``stage``),
the no-CoT ``solver``, the ``evaluation`` with its error attribution, the self-improving ``loop``, and the job that
drives everything: the ``cli`` (``mycelium``), ``job`` (``mycelium run`` and its presets in ``configs/``),
``report`` and ``release``. It reads the artifacts through ``mycelium_datasets``, which never imports it back.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

from mycelium_models.backbone import load_backbone, resolve_backbone
from mycelium_models.modeling_mycelium import (
    MyceliumBinder,
    MyceliumBinderConfig,
    MyceliumOpClassifier,
    MyceliumOpClassifierConfig,
    MyceliumStepDecoder,
    MyceliumStepDecoderConfig,
    MyceliumTagger,
    MyceliumTaggerConfig,
)


def register_auto_classes() -> None:
    """Register the students with the Auto classes, so ``from_pretrained(dir)`` loads them with no
    ``trust_remote_code``. Done here, on ``import mycelium_models``, and not in ``modeling_mycelium``: that file is
    also the remote code of every released student, and run as such it must not register the other students'
    classes for the whole process."""
    for config, model, auto in (
        (MyceliumTaggerConfig, MyceliumTagger, AutoModelForTokenClassification),
        (MyceliumOpClassifierConfig, MyceliumOpClassifier, AutoModelForSequenceClassification),
        (MyceliumBinderConfig, MyceliumBinder, AutoModel),
        (MyceliumStepDecoderConfig, MyceliumStepDecoder, AutoModel),
    ):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        auto.register(config, model, exist_ok=True)


register_auto_classes()

__all__ = [
    "MyceliumBinder",
    "MyceliumBinderConfig",
    "MyceliumOpClassifier",
    "MyceliumOpClassifierConfig",
    "MyceliumStepDecoder",
    "MyceliumStepDecoderConfig",
    "MyceliumTagger",
    "MyceliumTaggerConfig",
    "load_backbone",
    "register_auto_classes",
    "resolve_backbone",
]
