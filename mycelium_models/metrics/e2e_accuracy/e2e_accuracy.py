"""End-to-end answer accuracy with math-verify equivalence (Mycelium)."""

import datasets
import evaluate

from mycelium_models.metrics import e2e_accuracy

_DESCRIPTION = """Share of problems whose answer equals the gold answer under math-verify, with Mycelium's strict
numeric check on top (500 is not 5%), each check under a wall-clock limit in a worker process. An empty prediction
("" or None) is a wrong answer."""

_KWARGS = """
Args:
    predictions: list of str, the answers ("" for no answer).
    references: list of str, the gold answers.
    timeout: optional float, seconds per check (default 5).
Returns:
    accuracy, answered (share with an answer), n
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class E2eAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, timeout=5.0):
        return e2e_accuracy([p if p else None for p in predictions], references, timeout=timeout)
