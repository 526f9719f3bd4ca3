"""Card templates (Jinja2, rendered by huggingface_hub's ``DatasetCard.from_template`` / ``ModelCard.from_template``),
shipped as package data."""

from pathlib import Path

TEMPLATES = Path(__file__).parent
DATASET_CARD = TEMPLATES / "dataset_card.md"
MODEL_CARD = TEMPLATES / "model_card.md"
