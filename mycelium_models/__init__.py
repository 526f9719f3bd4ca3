"""Mycelium student models (the IO tagger and the operation classifier) and their backbones."""

from mycelium_models.backbone import load_backbone, resolve_backbone

__all__ = ["load_backbone", "resolve_backbone"]
