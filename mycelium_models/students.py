"""The student registry: each student's name, the artifact that trains it and how the Hub sees it.

Training, the run, the report, the release and the loop iterate over :data:`STUDENTS` instead of restating which
artifact trains which student, which Auto class loads it or which metric picks its best checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A Hub repo id as the release writes it and the solver reads it: ORG/NAME (a bare NAME would not say whose it is).
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class Student:
    """One student.

    Args:
        name: its folder under ``DIR/models/`` and its name on the command line (``mycelium train NAME``).
        artifact: the student set it is trained on (``DIR/<artifact>``).
        auto_class: the transformers Auto class that loads it.
        pipeline_tag: the Hub's pipeline tag for its card.
        task: what it does, in a line for its card.
        best_metric: the evaluation metric that picks the best checkpoint (higher is better).
        headline: ``(metric, label)`` of the evaluation metrics the run report's headline shows.
        head_learning_rate: the learning rate of the layers the student adds to its backbone, when none is given
            (None: the backbone's).
    """

    name: str
    artifact: str
    auto_class: str
    pipeline_tag: str
    task: str
    best_metric: str
    headline: tuple[tuple[str, str], ...]
    head_learning_rate: float | None = None


STUDENTS: dict[str, Student] = {
    student.name: student
    for student in (
        Student(
            name="tagger",
            artifact="io_tags",
            auto_class="AutoModelForTokenClassification",
            pipeline_tag="token-classification",
            task="token classification (IO: O / OP) of problem text; contiguous OP runs are operation regions",
            # span F1 ranks checkpoints: on the default run the eval loss is lowest at epoch 1 (F1 0.07) and rises
            # while F1 climbs to 0.24 at epoch 3 (an all-zero F1 keeps the first checkpoint)
            best_metric="f1",
            headline=(("f1", "span F1"), ("token_accuracy", "token accuracy")),
        ),
        Student(
            name="classifier",
            artifact="op_classes",
            auto_class="AutoModelForSequenceClassification",
            pipeline_tag="text-classification",
            task="classification of a problem-text unit into the sequence of operations it holds",
            best_metric="accuracy",
            headline=(("accuracy", "accuracy"), ("macro_f1", "macro-F1")),
        ),
        Student(
            name="binder",
            artifact="bindings",
            auto_class="AutoModel",
            pipeline_tag="token-classification",
            task=(
                "operand binding of the operations in problem-text units: each operand a pointer to a quantity the "
                "problem writes, another operation's result or a constant, and the operation that is the answer"
            ),
            best_metric="op_accuracy",
            headline=(("op_accuracy", "operand binding accuracy"), ("answer_accuracy", "answer selection accuracy")),
            # its pointer layers start from scratch: at 1e-4 its test pointer accuracy stayed at 0.10 after 6 epochs
            # (loss near uniform); the tagger's F1 is lower at 1e-3 (0.201 vs 0.229 on the default run): binder only
            head_learning_rate=1e-3,
        ),
        Student(
            name="decoder",
            artifact="bindings",
            auto_class="AutoModel",
            pipeline_tag="token-classification",
            task=(
                "a whole program from the problem text, one step at a time: each step two operands among the "
                "problem's quantities, constants and earlier results, and an operation, or stop; the answer is the "
                "last step's result"
            ),
            best_metric="step_accuracy",
            headline=(("step_accuracy", "step accuracy (teacher-forced)"), ("program_accuracy", "program accuracy")),
            # like the binder, most of its layers start from scratch
            head_learning_rate=1e-3,
        ),
    )
}


def get_student(name: str) -> Student:
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; valid choices: {', '.join(STUDENTS)}")
    return STUDENTS[name]
