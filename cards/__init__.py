"""The dataset card template (Jinja2, rendered by huggingface_hub's ``DatasetCard.from_template``), shipped as
package data. (The students' model card template is ``mycelium_models.templates``.)"""

from pathlib import Path

TEMPLATES = Path(__file__).parent
DATASET_CARD = TEMPLATES / "dataset_card.md"
