"""Mycelium student models (the IO tagger and the operation classifier), registered with the Auto classes."""

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
