"""Operand-binding accuracy of Mycelium's binder: pointers, operations, the answer operation, whole problems."""

import datasets
import evaluate

from mycelium_models.metrics import binding_accuracy

_DESCRIPTION = """Accuracy of the binder's operand pointers against reference bindings (the structure given)."""

_KWARGS = """
Args:
    predictions: per problem, per operation, the pointer code of each operand slot (-100: nothing to predict).
    references: the same shape, the reference pointer codes.
    answer_scores: optional, per problem, the answer score of each operation.
    answer_labels: optional, per problem, 1 for the answer operation, 0 for the others, -100 for padding.
Returns:
    pointer_accuracy, op_accuracy, answer_accuracy, problem_accuracy
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class BindingAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.List(datasets.List(datasets.Value("int64"))),
                    "references": datasets.List(datasets.List(datasets.Value("int64"))),
                }
            ),
        )

    def _compute(self, predictions, references, answer_scores=None, answer_labels=None):
        return binding_accuracy(predictions, references, answer_scores, answer_labels)
