"""The evaluation loop end to end (``evaluate_students``, the oracle ladder, ``write_eval``'s files) on four real
problems, with a scripted stand-in for the students: it executes each problem's reference binding through the
solver's own executor, and picks the right or a wrong answer operation per rung, so every count is known."""

from __future__ import annotations

import json

import pytest

from mycelium_models.evaluation import (
    STAGES,
    attribute,
    evaluate_students,
    ladder_markdown,
    reference_binding,
    reference_from_solution,
    render_eval_markdown,
    summarize,
    write_eval,
)
from mycelium_models.solver import execute_into_trace

EGGS = "Tom has 3 boxes with 12 eggs each. He breaks 5 eggs. How many eggs are left?"
PENS = "Ann buys 4 packs of 6 pens. She gives away 7 pens. How many pens does she have?"
ODD = "Bo has 2 | 3 marbles.\nHow many?"  # no solution: no reference; a "|" and a newline for the report
PROBLEMS = [
    {"id": "eggs", "problem": EGGS, "answer": "31", "solution": "3 * 12 = 36 eggs.\n36 - 5 = 31 eggs.\n#### 31"},
    {"id": "pens", "problem": PENS, "answer": "17", "solution": "4 * 6 = 24 pens.\n24 - 7 = 17 pens.\n#### 17"},
    {"id": "nogold", "problem": EGGS + " ", "answer": None, "solution": None},
    {"id": "odd", "problem": ODD, "answer": "6", "solution": None},
]
# which problems the stand-in answers right, per rung: (b) units and operations given, (c) units given, (d) neither
RIGHT = {"b": {EGGS, PENS}, "c": {PENS}, "d": {EGGS}}


class ScriptedStudents:
    """``solve`` and ``solve_chain`` as the real solver has them (with no step decoder); answers from the reference
    bindings it was given."""

    decoder = None

    def __init__(self):
        self.bindings = {}
        self.calls = []
        self.units = {}  # rung -> the unit spans it was given

    def solve(self, texts, units=None, operations=None):
        rung = "b" if operations is not None else "c" if units is not None else "d"
        self.calls.append((rung, list(texts)))
        self.units[rung] = units
        return [self.trace(text, text in RIGHT[rung]) for text in texts]

    solve_chain = solve

    def trace(self, text, right):
        trace = {"problem": text, "answer": None, "stage": None, "reason": "", "units": [], "ops": [], "answer_op": -1}
        binding = self.bindings.get(text)
        if binding is None:  # a wrong answer with nothing to compare it with
            trace.update(answer="5", units=[{"char_start": 0, "char_end": 5, "text": text[:5], "ops": []}])
            return trace
        trace["units"] = [{**u, "ops": []} for u in binding["units"]]
        operations = [{"op": op["op"], "unit": op["unit"]} for op in binding["ops"]]
        for op in operations:
            trace["units"][op["unit"]]["ops"].append(op["op"])
        pointers = [op["operands"] for op in binding["ops"]]
        answer_op = binding["answer_op"] if right else 0  # wrong: the first product is not the answer
        return execute_into_trace(text, trace, operations, pointers, answer_op, [])


@pytest.fixture
def evaluated():
    # per test, not per module: mutmut maps a function to the tests during which it runs, so a module fixture would
    # tie evaluate_students and the ladder to the first test only (after the first call, this takes ~0.05 s)
    students = ScriptedStudents()
    given = {}
    # the references evaluate_students makes from the solutions, made once here to script the stand-in
    from mycelium_datasets.defaults import load_spacy
    from mycelium_models.evaluation import reference_from_solution

    for p in PROBLEMS[:2]:
        ref = reference_from_solution(p["problem"], p["solution"], p["answer"], load_spacy(None)(p["problem"]))
        students.bindings[p["problem"]] = reference_binding(p["problem"], ref)
        assert students.bindings[p["problem"]] is not None, p["id"]
    summary, rows = evaluate_students(students, PROBLEMS, given, progress=False)
    return students, given, summary, rows


def test_scores_and_attribution(evaluated):
    _, given, summary, rows = evaluated
    assert given == {}  # the caller's references are not written into
    assert [r["id"] for r in rows] == ["eggs", "pens", "nogold", "odd"]
    assert [r["correct"] for r in rows] == [True, False, None, False]
    assert [r["stage"] for r in rows] == [None, "SELECTION", None, "UNATTRIBUTED"]
    assert [r["scored"] for r in rows] == [True, True, False, True]
    assert rows[2]["reason"] == "not scored: no gold answer" and rows[2]["status"] == "no_gold_answer"
    assert [r["answer"] for r in rows] == ["31", "24", "5", "5"]
    assert [r["reference_validated"] for r in rows] == [True, True, False, False]
    assert [r["teacher_correct"] for r in rows] == [True, True, None, None]
    assert rows[1]["answer_op"] == 0 and rows[1]["solver_stage"] is None
    assert summary["n"] == 4 and summary["n_scored"] == 3 and summary["correct"] == 1 and summary["wrong"] == 2
    assert summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["attribution"] == {s: int(s in ("SELECTION", "UNATTRIBUTED")) for s in STAGES}
    assert summary["solver_answered"] == 4 and summary["reference_validated"] == 2
    assert summary["teacher_accuracy"] == 1.0 and summary["teacher_n"] == 2


def test_the_oracle_ladder_swaps_in_one_student_per_rung(evaluated):
    students, _, summary, rows = evaluated
    ladder = summary["ladder"]
    assert "per_problem" not in ladder
    assert {r: (ladder[r]["correct"], ladder[r]["n"]) for r in "abcd"} == {
        "a": (2, 2),  # the reference through the executor: its ceiling
        "b": (2, 2),
        "c": (1, 2),
        "d": (1, 2),
    }
    assert ladder["c"]["accuracy"] == 0.5 and "learned" in ladder["c"]["description"]
    assert [r["ladder"] for r in rows] == [
        {"a": True, "b": True, "c": False, "d": True},
        {"a": True, "b": True, "c": True, "d": False},
        {"a": None, "b": None, "c": None, "d": None},
        {"a": None, "b": None, "c": None, "d": None},
    ]
    # the rungs ask only about the problems on the ladder, with the reference units (and operations for b)
    assert [rung for rung, _ in students.calls] == ["d", "b", "c"]
    assert students.calls[1][1] == [EGGS, PENS] and students.calls[2][1] == [EGGS, PENS]
    spans = [[(u["char_start"], u["char_end"]) for u in students.bindings[text]["units"]] for text in (EGGS, PENS)]
    assert students.units == {"d": None, "b": spans, "c": spans}


def test_every_row_has_the_same_columns_and_the_solver_s_units(evaluated):
    _, _, summary, rows = evaluated
    assert all(set(r) == set(rows[0]) for r in rows)  # predictions.jsonl is one table
    assert rows[0]["reason"] == "" and rows[0]["correct"] is True
    students = ScriptedStudents()
    students.bindings = evaluated[0].bindings
    assert rows[0]["units"] == students.trace(EGGS, True)["units"]
    assert 0 <= summary["solve_seconds"] < 60 and "problems_per_second" in summary


def test_the_caller_s_references_are_used_and_the_teacher_is_scored_only_where_it_wrote_a_cot():
    # no solutions (nothing made on the fly), no validated reference: nothing on the ladder
    problems = [{**PROBLEMS[3]}, {"id": "eggs", "problem": EGGS, "answer": "31"}]
    references = {
        "odd": {"cot": "2 and 3 make 6.", "cot_answer": "6", "cot_correct": True, "ops": [], "validated": False},
        "eggs": {"cot": "", "cot_answer": None, "cot_correct": False, "ops": [], "validated": False},
    }
    students = ScriptedStudents()
    summary, rows = evaluate_students(students, problems, references, progress=False)
    assert [r["teacher_correct"] for r in rows] == [True, None]
    assert summary["teacher_accuracy"] == 1.0 and summary["teacher_n"] == 1
    assert [r["stage"] for r in rows] == ["UNATTRIBUTED", "UNATTRIBUTED"]
    ladder = summary["ladder"]
    # no problem on the ladder: no accuracy, never 0
    assert {r: (ladder[r]["correct"], ladder[r]["n"], ladder[r]["accuracy"]) for r in "abcd"} == {
        r: (0, 0, None) for r in "abcd"
    }
    assert [rung for rung, _ in students.calls] == ["d"]  # an empty ladder asks the students nothing more


def test_the_written_evaluation(evaluated, tmp_path):
    _, _, summary, rows = evaluated
    path = write_eval(tmp_path / "eval", summary, rows, title="Tiny evaluation")
    assert path == tmp_path / "eval" / "eval.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(summary, default=str))
    written = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == ["eggs", "pens", "nogold", "odd"]
    assert (tmp_path / "eval" / "attribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "eval" / "report.md").read_text()
    for line in [
        "# Tiny evaluation",
        "| problems | 4 (scored: 3) |",
        "| **end-to-end accuracy (students, no CoT)** | **0.333** (1/3) |",
        "| solver gave an answer | 4 |",
        "| problems with a validated reference DAG | 2 |",
        "| teacher's own CoT accuracy (reported apart) | 1.000 (2) |",
        "## Oracle ladder",
        "The same 2 problems (those with a validated reference DAG), one learned student swapped in per rung; "
        "the drop between rungs names the student to improve.",
        "| (a) | reference units + operations + binding (the executor's ceiling) | 2/2 | 1.000 |",
        "| (c) | chain: reference units, learned classifier + binder | 1/2 | 0.500 |",
        "![attribution](attribution.png)",
        "| SELECTION | 1 | 50.0% |",
        "| EXECUTION | 0 | 0.0% |",
        "| **total** | **2** | |",
        "### SELECTION",
        "### UNATTRIBUTED",
        "- `odd`: Bo has 2 \\| 3 marbles. How many?  ",
        "  gold 6, answer 5; ops: none  ",
        "## Solved without a CoT (examples)",
    ]:
        assert line in report.splitlines(), line
    assert "### EXECUTION" not in report
    assert "- `pens`: " + PENS + "  " in report.splitlines()
    selection = report.split("### SELECTION")[1].split("###")[0]
    assert "ops: *op0 mul(4, 6)=24; op1 sub(24, 7)=17  " in selection.splitlines()[3]
    assert "why: operation 0 was the answer, reference 1" in selection
    solved = report.split("## Solved without a CoT (examples)")[1]
    assert "`eggs`" in solved and "*op1 sub(" in solved and "-> **31**" in solved


def row(correct, stage=None, answer="1", teacher=None, validated=False, scored=True):
    return {
        "scored": scored,
        "correct": correct if scored else None,
        "stage": stage,
        "answer": answer,
        "teacher_correct": teacher,
        "reference_validated": validated,
    }


def test_summary_of_known_rows():
    rows = [
        row(True, teacher=True, validated=True),
        row(False, "SELECTION", teacher=False, validated=True),
        row(False, "SELECTION", answer=None),
        row(False, "EXECUTION"),
        row(None, answer=None, scored=False, validated=True),
    ]
    summary = summarize(rows, solve_seconds=1.23456)
    assert (summary["n"], summary["n_scored"], summary["correct"], summary["wrong"]) == (5, 4, 1, 3)
    assert summary["accuracy"] == 0.25
    assert summary["attribution"]["SELECTION"] == 2 and summary["attribution"]["EXECUTION"] == 1
    assert summary["attribution_share"]["SELECTION"] == pytest.approx(2 / 3)
    assert summary["attribution_share"]["TEACHER_ERROR"] == 0.0
    assert summary["solver_answered"] == 3
    assert summary["reference_validated"] == 2  # of the scored rows only
    assert summary["teacher_accuracy"] == 0.5 and summary["teacher_n"] == 2
    assert summary["solve_seconds"] == 1.235 and summary["problems_per_second"] == 4.05


def test_summary_with_nothing_scored_or_no_time():
    summary = summarize([row(None, scored=False)], solve_seconds=0.0)
    assert summary["accuracy"] is None and summary["wrong"] == 0  # nothing scored: no accuracy, never 0
    assert set(summary["attribution_share"].values()) == {0.0}
    assert summary["teacher_accuracy"] is None and summary["teacher_n"] == 0
    assert summary["solve_seconds"] == 0.0 and summary["problems_per_second"] is None
    assert "solve_seconds" not in summarize([row(True)])


@pytest.mark.parametrize(
    "ops, stage",
    [
        ([{"result": "31"}], "TEACHER_ERROR"),  # the gold is an operation's result, though not written as digits
        ([{"written_result": "31"}], "TEACHER_ERROR"),
        ([{"result": None}, {"result": "x"}], "ANSWER_NOT_IN_COT"),
        (None, "ANSWER_NOT_IN_COT"),
    ],
)
def test_the_gold_is_in_the_cot_when_an_operation_computed_it(ops, stage):
    reference = {"cot": "Three dozen, less five.", "ops": ops, "cot_correct": False, "finish_reason": "stop"}
    assert attribute({"problem": EGGS, "units": []}, "31", reference)[0] == stage


def test_a_reference_from_a_solution_reads_its_boxed_answer():
    solution = "3 * 12 = 36 eggs.\n36 - 5 = 31 eggs, so \\boxed{31}. Check: 31 + 5 = 36."
    ref = reference_from_solution(EGGS, solution, "31", None)
    assert ref["cot"].startswith("3 * 12 = 36 eggs.") and ref["finish_reason"] == "reference"
    assert ref["cot_answer"] == "31" and ref["cot_correct"] is True
    assert reference_from_solution(EGGS, solution, None, None)["cot_correct"] is False


def write_artifact(folder, splits: dict[str, list[dict]]):
    """An artifact folder as a run writes it: ``data/<split>-00000-of-00001.parquet`` and a card."""
    import datasets

    (folder / "data").mkdir(parents=True)
    for split, rows in splits.items():
        datasets.Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    (folder / "README.md").write_text(f"# {folder.name}\n")


def trace_row(id_, cot, correct=True, answer="6"):
    return {"id": id_, "cot": cot, "cot_answer": answer, "correct": correct, "finish_reason": "stop", "extra": 1}


def test_references_from_a_run_join_the_teacher_s_cots_and_their_operation_graphs(tmp_path):
    from mycelium_models.evaluation import references_from_run

    assert references_from_run(tmp_path) == {}  # a run without either artifact
    write_artifact(
        tmp_path / "cot_traces",
        {
            "train": [trace_row("a", "2 + 4 = 6."), trace_row("b", "", correct=False, answer=None)],
            "test": [trace_row("c", "1 + 1 = 3.", correct=False, answer="3")],
        },
    )
    only_traces = references_from_run(tmp_path)
    assert sorted(only_traces) == ["a", "c"]  # a trace without a CoT is no reference
    assert only_traces["a"] == {
        "cot": "2 + 4 = 6.",
        "cot_answer": "6",
        "cot_correct": True,
        "finish_reason": "stop",
        "ops": [],
        "validated": False,
    }
    assert only_traces["c"]["cot_correct"] is False and only_traces["c"]["cot_answer"] == "3"
    op, other = {"op": "add", "result": "6"}, {"op": "add", "result": "2"}
    write_artifact(
        tmp_path / "op_pairs",
        {
            "train": [
                {"id": "a", "ops": [op], "validated": True},
                {"id": "z", "ops": [op], "validated": True},  # no trace: not a reference
            ],
            "test": [{"id": "c", "ops": [other], "validated": False}],
        },
    )
    refs = references_from_run(tmp_path)
    assert sorted(refs) == ["a", "c"]
    assert refs["a"]["ops"] == [op] and refs["a"]["validated"] is True
    assert refs["c"]["ops"] == [other] and refs["c"]["validated"] is False
    # one split: its traces joined with its own operation graphs, the other split's left out of both
    test_only = references_from_run(str(tmp_path), split="test")
    assert test_only == {"c": refs["c"]}
    assert references_from_run(tmp_path, split="train") == {"a": refs["a"]}


def test_a_problem_without_text_is_asked_as_empty_text_and_scored():
    problems = [{"id": "blank", "problem": None, "answer": "3", "solution": "1 + 2 = 3.\n#### 3"}]
    students = ScriptedStudents()
    summary, rows = evaluate_students(students, problems, progress=False)
    assert students.calls[0] == ("d", [""])
    assert rows[0]["problem"] is None and rows[0]["scored"] and rows[0]["correct"] is False
    assert rows[0]["teacher_correct"] is True  # the reference made from the solution still reads its answer
    assert summary["n_scored"] == 1 and summary["ladder"]["a"]["n"] == 0


def test_the_evaluation_is_written_into_a_new_nested_folder_and_rewritten_in_place(evaluated, tmp_path):
    from fractions import Fraction

    _, _, summary, rows = evaluated
    out = tmp_path / "runs" / "eval"  # its parent does not exist yet
    rows = [{**rows[0], "value": Fraction(1, 3)}, *rows[1:]]  # a value JSON has no type for is written as text
    summary = {**summary, "value": Fraction(2, 3)}
    for _ in range(2):  # a second evaluation into the same folder replaces the first
        write_eval(out, summary, rows)
    written = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(written) == len(rows) and written[0]["value"] == "1/3"
    assert json.loads((out / "eval.json").read_text())["value"] == "2/3"
    assert (out / "report.md").read_text().startswith("# Mycelium evaluation\n")  # the default title


def markdown_blocks_are_well_formed(report: str) -> None:
    """What a Markdown renderer needs: a heading, a table and a figure stand apart from the text around them (a blank
    line before and after), a table's second row is its separator with one cell per header cell, one final newline."""
    assert report.endswith("\n") and not report.endswith("\n\n")
    lines = report.split("\n")[:-1]
    for k, line in enumerate(lines):
        if line.startswith("#") or line.startswith("!["):
            assert k == 0 or lines[k - 1] == "", (k, line)
            assert lines[k + 1] == "", (k, line)
        if line.startswith("|") and not lines[k - 1].startswith("|"):  # a table's first row
            assert lines[k - 1] == "", (k, line)
            assert lines[k + 1] == "|" + " --- |" * (line.count("|") - 1), (k, line)


def test_the_report_is_well_formed_markdown_with_its_tables_and_prose(evaluated):
    _, _, summary, rows = evaluated
    report = render_eval_markdown(summary, rows, "Tiny", "attribution.png")
    markdown_blocks_are_well_formed(report)
    lines = report.splitlines()
    assert lines[:6] == [
        "# Tiny",
        "",
        "The students alone, no chain of thought (`\\boxed{}` plays no part).",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    for line in [
        "| rung | inputs | answered correctly | accuracy |",
        "## Error attribution",
        "First stage that went wrong, in the field guide's order (rules: `mycelium_models/evaluation.py`, "
        "docs/evaluation.md).",
        "| stage | wrong answers | share |",
        f"| solver throughput | {summary['problems_per_second']} problems/s |",
    ]:
        assert line in lines, line
    assert "![attribution]" not in render_eval_markdown(summary, rows, "Tiny", None)


def test_the_report_without_a_ladder_or_throughput_and_with_many_examples():
    long_problem = "".join(chr(97 + k % 26) for k in range(340))  # abc...z abc...: no two cuts alike
    rows = [
        {
            "id": f"w{k}",
            "problem": long_problem,
            "gold": "1",
            "answer": "2",
            "correct": False,
            "scored": True,
            "stage": "SELECTION",
            "reason": "x" * 400,
            "ops": [],
            "teacher_correct": None,
            "reference_validated": False,
        }
        for k in range(5)
    ]
    rows += [{**r, "id": f"r{k}", "correct": True, "stage": None, "answer": "1"} for k, r in enumerate(rows)]
    rows[1]["problem"] = rows[6]["problem"] = None  # a problem without text is listed with none
    summary = summarize(rows)  # no time measured: no throughput line
    summary["ladder"] = {rung: {"description": "d", "correct": 0, "n": 0, "accuracy": 0.0} for rung in "abcd"}
    assert ladder_markdown(summary["ladder"]) == [] and ladder_markdown(None) == []
    report = render_eval_markdown(summary, rows, "Many", "attribution.png")
    markdown_blocks_are_well_formed(report)
    assert "Oracle ladder" not in report and "throughput" not in report
    # three examples per stage and three solved ones, each problem cut to 220 characters and each reason to 300
    assert [line[:6] for line in report.splitlines() if line.startswith("- `")] == [
        "- `w0`",
        "- `w1`",
        "- `w2`",
        "- `r0`",
        "- `r1`",
        "- `r2`",
    ]
    assert report.count(f"`w0`: {long_problem[:220]}  \n") == 1 and long_problem[:221] not in report
    assert f"why: {'x' * 300}\n" in report
    assert "  none -> **1**\n" not in report  # a solved row without ops has none to show
    assert f"- `r0`: {long_problem[:220]}  \n   -> **1**\n" in report
    assert "- `w1`:   \n  gold 1, answer 2; ops: none  \n" in report and "- `r1`:   \n   -> **1**\n" in report


def test_the_attribution_figure_shows_each_stage_s_count_in_the_field_guide_s_order(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from mycelium_models.evaluation import plot_attribution

    shown = []
    close = plt.close

    def keep(fig=None):  # the figure as it was saved, then closed as plot_attribution asks
        shown.append(fig if fig is not None else plt.gcf())
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    counts = dict.fromkeys(STAGES, 0) | {"ANSWER_NOT_IN_COT": 1, "SEGMENTATION": 4, "EXECUTION": 2}

    def drawn(attribution):
        summary = {"attribution": attribution, "wrong": sum(attribution.values()), "n_scored": 10}
        plot_attribution(summary, tmp_path / "a.png")
        (ax,) = shown[-1].axes
        bars = sorted(ax.patches, key=lambda bar: -bar.get_y())  # top to bottom
        labels = {tick.get_position()[1]: tick.get_text() for tick in ax.get_yticklabels()}
        return ax, [(labels[round(bar.get_y() + bar.get_height() / 2)], bar.get_width()) for bar in bars]

    ax, bars = drawn(counts)
    # from the top, the field guide's order; UNATTRIBUTED only when something is
    assert bars == [(stage, counts[stage]) for stage in STAGES[:-1]]
    assert [text.get_text() for text in ax.texts] == [str(counts[s]) for s in reversed(STAGES[:-1])]
    assert ax.get_title() == "Error attribution (7 wrong of 10)"
    assert ax.get_xlabel() == "wrong answers attributed to the stage"
    assert {bar.get_facecolor() for bar in ax.patches} == {to_rgba("#4a7ab0")}
    png = (tmp_path / "a.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (880, 396)  # 8 x 3.6 in, 110 dpi
    _, bars = drawn(counts | {"UNATTRIBUTED": 3})
    assert bars[-1] == ("UNATTRIBUTED", 3) and len(bars) == len(STAGES)


def test_the_verification_time_limit_reaches_every_comparison(evaluated, monkeypatch):
    from mycelium_datasets import answers

    students, _, _, _ = evaluated
    limits = []
    real = answers.answers_match

    def spy(pred, gold, timeout=5.0):
        limits.append(timeout)
        return real(pred, gold, timeout=timeout)

    from mycelium_datasets.defaults import load_spacy

    references = {
        p["id"]: reference_from_solution(p["problem"], p["solution"], p["answer"], load_spacy(None)(p["problem"]))
        for p in PROBLEMS[:2]
    }
    monkeypatch.setattr(answers, "answers_match", spy)
    summary, _ = evaluate_students(students, PROBLEMS, references, verify_timeout=0.25, progress=False)
    # the students' three scored answers, then rungs a, b and c on the two problems of the ladder
    assert limits == [0.25] * 9 and summary["correct"] == 1


def test_a_reference_whose_binding_does_not_execute_is_wrong_on_the_ladder_s_first_rung():
    from mycelium_datasets.defaults import load_spacy

    p = PROBLEMS[0]
    reference = reference_from_solution(p["problem"], p["solution"], p["answer"], load_spacy(None)(p["problem"]))
    binding = reference_binding(p["problem"], reference)
    zero = {"kind": "op", "index": 1}  # mul takes sub's result, which takes mul's: a cycle, nothing executes
    broken = {**binding, "ops": [{**binding["ops"][0], "operands": [zero, zero]}, binding["ops"][1]]}
    students = ScriptedStudents()
    summary, rows = evaluate_students(students, [p], {"eggs": {**reference, "binding": broken}}, progress=False)
    assert summary["ladder"]["a"]["n"] == 1 and summary["ladder"]["a"]["correct"] == 0
    assert rows[0]["ladder"]["a"] is False


def test_references_are_made_with_the_spacy_pipeline_asked_for(monkeypatch):
    from mycelium_datasets import defaults

    asked = []
    real = defaults.load_spacy

    def spy(name=None):
        asked.append(name)
        return real(None)

    monkeypatch.setattr(defaults, "load_spacy", spy)
    summary, _ = evaluate_students(ScriptedStudents(), PROBLEMS[:2], spacy_pipeline="my_pipeline", progress=False)
    assert asked == ["my_pipeline"] and summary["reference_validated"] == 2  # one pipeline for every reference
