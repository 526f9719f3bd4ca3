"""Student backbones: the embedded all-MiniLM-L6-v2 by default, any ``AutoModel`` id or folder otherwise."""

from __future__ import annotations

from mycelium_datasets.defaults import DEFAULT_BACKBONE, resolve_backbone


def load_backbone(name_or_path: str = DEFAULT_BACKBONE):
    """Load ``(model, tokenizer)`` of a student backbone (offline for the embedded default)."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_backbone(name_or_path)
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


__all__ = ["load_backbone", "resolve_backbone"]
