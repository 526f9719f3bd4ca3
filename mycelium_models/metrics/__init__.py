"""Mycelium's metrics, as 🤗 ``evaluate`` modules shipped inside the package and loadable offline by path.

    import evaluate
    from mycelium_models.metrics import metric_path

    f1 = evaluate.load(metric_path("io_span_f1"))        # span-level IO F1 of the tagger
    acc = evaluate.load(metric_path("op_accuracy"))      # operation accuracy and macro-F1 of the classifier
    e2e = evaluate.load(metric_path("e2e_accuracy"))     # end-to-end answers, math-verify equivalence
    bind = evaluate.load(metric_path("binding_accuracy"))  # the binder's operand pointers and answer operation

The recipes (``mycelium train``) and ``mycelium eval`` use these modules; the plain functions below are what they
compute, for callers who do not want ``evaluate``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRICS = ("io_span_f1", "op_accuracy", "e2e_accuracy", "binding_accuracy")


def metric_path(name: str) -> str:
    """The folder of a metric module, for ``evaluate.load``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid choices: {', '.join(METRICS)}")
    return str(Path(__file__).parent / name)


def load_metric(name: str):
    """``evaluate.load`` of one of our metric modules, by path (works offline)."""
    import os

    import evaluate

    # in memory and with a per-process id: several processes (DDP ranks) may compute at once
    return evaluate.load(metric_path(name), keep_in_memory=True, experiment_id=f"mycelium-{os.getpid()}")


def span_set(labels) -> set[tuple[int, int]]:
    """Contiguous OP (1) runs as (start, end) token index pairs; an O or an ignored (-100) position ends a run."""
    spans, start = set(), None
    for i, label in enumerate(list(labels) + [0]):
        if label == 1 and start is None:
            start = i
        elif label != 1 and start is not None:
            spans.add((start, i))
            start = None
    return spans


def io_span_f1(predictions, labels) -> dict:
    """Span-level IO F1: a predicted OP run counts when it matches a gold OP run exactly (positions labelled -100 in
    the gold are ignored); also precision, recall and token accuracy."""
    tp = n_pred = n_gold = 0
    token_correct = token_total = 0
    for pred, gold in zip(predictions, labels):
        pred, gold = np.asarray(pred), np.asarray(gold)
        n = min(len(pred), len(gold))
        pred, gold = pred[:n], gold[:n]
        keep = gold != -100
        pred = np.where(keep, pred, -100)
        p, g = span_set(pred), span_set(gold)
        tp += len(p & g)
        n_pred += len(p)
        n_gold += len(g)
        token_correct += int((pred[keep] == gold[keep]).sum())
        token_total += int(keep.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "token_accuracy": token_correct / max(1, token_total)}


def accuracy_macro_f1(predictions, labels, n_labels: int | None = None) -> dict:
    """Accuracy and macro-F1 over the classes that occur in predictions or labels."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    classes = range(n_labels) if n_labels else sorted(set(predictions.tolist()) | set(labels.tolist()))
    f1s = []
    for c in classes:
        tp = int(((predictions == c) & (labels == c)).sum())
        fp = int(((predictions == c) & (labels != c)).sum())
        fn = int(((predictions != c) & (labels == c)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": float((predictions == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
    }


def e2e_accuracy(predictions, references, timeout: float = 5.0) -> dict:
    """End-to-end accuracy: an answer (a string, or None for no answer) is right when math-verify (plus the strict
    numeric check, under a time limit) says it equals the gold answer."""
    from mycelium_datasets.answers import answers_match

    correct = sum(
        1 for p, r in zip(predictions, references) if p is not None and answers_match(p, r, timeout=timeout).match
    )
    answered = sum(1 for p in predictions if p is not None)
    n = len(references)
    return {"accuracy": correct / n if n else 0.0, "answered": answered / n if n else 0.0, "n": n}


def binding_accuracy(predictions, references, answer_scores=None, answer_labels=None) -> dict:
    """The binder's accuracy against reference bindings, teacher-forced structure: per problem, per operation, per
    operand slot a pointer code (``-100`` where nothing is to be predicted, e.g. after END or for padding).

    ``pointer_accuracy``: slots right; ``op_accuracy``: operations with every slot right; ``answer_accuracy``: the
    best scored operation is the answer (``answer_labels`` 1 / 0 / -100); ``problem_accuracy``: every operation
    and the answer right."""
    slots = slots_right = ops = ops_right = problems = problems_right = 0
    answers = answers_right = 0
    for k, (pred, gold) in enumerate(zip(predictions, references)):
        pred, gold = np.asarray(pred), np.asarray(gold)
        n = min(len(pred), len(gold))
        pred, gold = pred[:n], gold[:n]
        scored = gold != -100
        right = (pred == gold) | ~scored
        slots += int(scored.sum())
        slots_right += int((scored & (pred == gold)).sum())
        op_scored = scored.any(-1)
        op_right = right.all(-1) & op_scored
        ops += int(op_scored.sum())
        ops_right += int(op_right.sum())
        problem_right = bool(op_scored.any()) and bool(op_right[op_scored].all())
        if answer_scores is not None and answer_labels is not None:
            labels = np.asarray(answer_labels[k])
            scores = np.asarray(answer_scores[k], dtype=float)[: len(labels)]
            valid = labels != -100
            if (labels == 1).any():
                answers += 1
                best = int(np.where(valid, scores, -np.inf).argmax())
                answers_right += int(labels[best] == 1)
                problem_right = problem_right and labels[best] == 1
        problems += int(bool(op_scored.any()))
        problems_right += int(problem_right)
    return {
        "pointer_accuracy": slots_right / slots if slots else 0.0,
        "op_accuracy": ops_right / ops if ops else 0.0,
        "answer_accuracy": answers_right / answers if answers else 0.0,
        "problem_accuracy": problems_right / problems if problems else 0.0,
    }
