"""Operation accuracy and macro-F1 for Mycelium's operation classifier."""

import datasets
import evaluate

from mycelium_models.metrics import accuracy_macro_f1

_DESCRIPTION = """Accuracy and macro-F1 of operation labels (class indices) predicted for problem-text regions."""

_KWARGS = """
Args:
    predictions: list of int, predicted operation indices.
    references: list of int, gold operation indices.
    num_labels: optional int, the number of operation classes (macro-F1 over those that occur otherwise).
Returns:
    accuracy, macro_f1
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class OpAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, num_labels=None):
        return accuracy_macro_f1(predictions, references, num_labels)
