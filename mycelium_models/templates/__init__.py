"""The students' model card template (Jinja2, rendered by huggingface_hub's ``ModelCard.from_template``), shipped as
package data.

It lives with the students, not beside the dataset card template in ``mycelium_datasets.cards``: every artifact's
code hash covers that package's files, so a model card edit there would rebuild (and re-version) every dataset."""

from pathlib import Path

MODEL_CARD = Path(__file__).parent / "model_card.md"
