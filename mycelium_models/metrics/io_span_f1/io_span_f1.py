"""Span-level IO F1 for Mycelium's tagger: contiguous OP runs must match gold runs exactly."""

import datasets
import evaluate

from mycelium_models.metrics import io_span_f1

_DESCRIPTION = """Span-level F1 of IO tags (0 = O, 1 = OP, -100 = ignored position, e.g. special tokens).
A predicted OP run counts only when it equals a gold OP run. Also returns precision, recall and token accuracy."""

_KWARGS = """
Args:
    predictions: list of lists of int, predicted labels per token.
    references: list of lists of int, gold labels per token (-100 ignored).
Returns:
    f1, precision, recall, token_accuracy
Example:
    >>> metric = evaluate.load(metric_path("io_span_f1"))
    >>> metric.compute(predictions=[[0, 1, 1, 0]], references=[[-100, 1, 1, 0]])["f1"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class IoSpanF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(self, predictions, references):
        return io_span_f1(predictions, references)
