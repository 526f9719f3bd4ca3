"""The students inside a run (mycelium_run/stage.py): one training surface for `mycelium run` and `mycelium train`."""

from __future__ import annotations

import dataclasses

from mycelium_models.train import StudentTrainingArguments
from mycelium_run.job import split_options
from mycelium_run.stage import _SET_BY_THE_RUN, StudentsConfig, student_arguments


def test_a_run_sets_every_model_option_train_has_with_the_same_defaults():
    run_fields = {f.name: f for f in dataclasses.fields(StudentsConfig)}
    for f in dataclasses.fields(StudentTrainingArguments):
        if f.name in _SET_BY_THE_RUN:
            continue
        mine = run_fields.get(f"student_{f.name}")
        assert mine is not None, f"mycelium run cannot set {f.name}: add student_{f.name} to StudentsConfig"
        assert mine.default == f.default, (f.name, mine.default, f.default)


def test_the_runs_options_reach_the_students_training_arguments():
    config = split_options(
        {"student_pooling": "last", "student_freeze_embeddings": False, "student_min_constant_programs": 2}
    )["students"]
    args = student_arguments(config, "runs/x", "my-backbone", 96, models_dir="runs/x/work")
    assert (args.pooling, args.freeze_embeddings, args.min_constant_programs) == ("last", False, 2)
    assert (args.run_dir, args.backbone, args.max_length) == ("runs/x", "my-backbone", 96)
    assert args.models_dir == "runs/x/work"
    assert student_arguments(StudentsConfig(), "r", "b", 256) == StudentTrainingArguments(run_dir="r", backbone="b")
