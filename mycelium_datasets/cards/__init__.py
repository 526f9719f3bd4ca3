"""The dataset card templates (Jinja2, rendered by huggingface_hub's ``DatasetCard.from_template``), shipped as
package data: an artifact's card, and a run folder's card, which names each artifact as a configuration. (The
students' model card template is ``mycelium_models.templates``.)"""

from pathlib import Path

TEMPLATES = Path(__file__).parent
DATASET_CARD = TEMPLATES / "dataset_card.md"
RUN_CARD = TEMPLATES / "run_card.md"
