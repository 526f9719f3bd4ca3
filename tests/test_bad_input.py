"""The bad-input matrix: each bad input, through every stage, gives a clear error naming the field or a row with a
failure status and reason; rows in = rows out + counted drops; offsets stay valid indices; nothing hangs.

One small run (reference CoTs, the tiny teacher) carries every bad row at once; the stage-level and solver cases
call the stage functions directly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest

from mycelium_datasets.answers import answers_match, extract_answer, extract_boxed, normalize_gold
from mycelium_datasets.arith import format_value
from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.clause_regions import make_regions
from mycelium_datasets.numbers import problem_numbers
from mycelium_datasets.op_pairs import make_ops
from mycelium_run.cli import main
from mycelium_run.job import load_preset, split_options

from conftest import save_solver, write_jsonl

HUGE = ("Tom has 3 apples and buys 4 more. " * 3000)[:100_000]
DEEP = "{" * 2000 + "1" + "}" * 2000
OK_SOLUTION = "Tom has 3 + 4 = 7 apples.\n#### 7"
STEM = "bad"

# name -> (JSON record or raw line, problems status, a word its status_reason holds, op_pairs status)
MATRIX = {
    "ok": (
        {"id": "ok", "problem": "Tom has 3 apples and buys 4 more. How many?", "answer": "7", "solution": OK_SOLUTION},
        "ok",
        "",
        "validated",
    ),
    "empty": (
        {"id": "empty", "problem": "", "answer": "7", "solution": OK_SOLUTION},
        "empty_problem",
        "'problem'",
        "no_spans",
    ),
    "whitespace": (
        {"id": "whitespace", "problem": " \t\n  ", "answer": "7", "solution": OK_SOLUTION},
        "empty_problem",
        "'problem'",
        "no_spans",
    ),
    # 100,000 characters: too long to capture (a recorded span_status), and never parsed by spaCy
    "huge": ({"id": "huge", "problem": HUGE, "answer": "7", "solution": OK_SOLUTION}, "ok", "", "no_spans"),
    "huge-number": (
        {"id": "huge-number", "problem": "9" * 100_000, "answer": "9", "solution": "9 - 0 = 9\n#### 9"},
        "ok",
        "",
        "no_spans",
    ),
    "huge-cot": (
        {"id": "huge-cot", "problem": "Tom has 3 apples.", "answer": "7", "solution": "3 + 4 = 7. " * 9000},
        "ok",
        "",
        "no_spans",
    ),
    "arabic": (
        {
            "id": "arabic",
            "problem": "لدى أحمد 3 تفاحات واشترى 4 تفاحات أخرى. كم تفاحة لديه الآن؟",
            "answer": "7",
            "solution": "3 + 4 = 7\n#### 7",
        },
        "ok",
        "",
        "validated",
    ),
    "hebrew": (
        {
            "id": "hebrew",
            "problem": "לדני יש 3 תפוחים והוא קנה עוד 4. כמה תפוחים יש לו?",
            "answer": "7",
            "solution": "3 + 4 = 7\n#### 7",
        },
        "ok",
        "",
        "validated",
    ),
    # zero-width characters inside a number ("1\u200b2" is 12), a word and the gold answer
    "zero-width": (
        {
            "id": "zero-width",
            "problem": "Tom\u200b has 1\u200b2 apples and buys 4\u200d more\ufeff. How many?",
            "answer": "1\u200b6",
            "solution": "Tom has 12 + 4 = 16 apples.\n#### 16",
        },
        "ok",
        "",
        "validated",
    ),
    "emoji": (
        {
            "id": "emoji",
            "problem": "Tom has 3 🍎 and buys 4 more 🍎. How many 🍎 does 👨‍👩‍👧 have? 🤔",
            "answer": "7",
            "solution": "Tom has 3 + 4 = 7 🍎.\n#### 7",
        },
        "ok",
        "",
        "validated",
    ),
    "fullwidth": (
        {
            "id": "fullwidth",
            "problem": "Tom has １２ apples and buys ４ more. How many?",
            "answer": "16",
            "solution": "Tom has 12 + 4 = 16 apples.\n#### 16",
        },
        "ok",
        "",
        "validated",
    ),
    "fullwidth-cot": (
        {
            "id": "fullwidth-cot",
            "problem": "Tom has １２ apples and buys ４ more. How many?",
            "answer": "１６",
            "solution": "Tom has １２ + ４ = １６ apples.\n#### １６",
        },
        "ok",
        "",
        "validated",
    ),
    # LaTeX bombs: the gold check times out (no verdict, not "wrong"), the CoT's bomb equations are parse errors
    "bomb-power": (
        {
            "id": "bomb-power",
            "problem": "Tom has 2 apples and 3 pears. What is 10 to the 10 to the 10?",
            "solution": "First 2 + 3 = 5.\n\\[10^{10^{10}} = 10^{10^{10}}\\]\n\\boxed{10^{10^{10}}}",
        },
        "ok",
        "",
        "unverified",
    ),
    "bomb-tower": (
        {
            "id": "bomb-tower",
            "problem": "What is 9 times 9?",
            "answer": "9^{9^{9^9}}",
            "solution": "9 * 9 = 81\n\\[9^{9^{9^9}} = 9^{9^{9^9}}\\]\n\\boxed{9^{9^{9^9}}}",
        },
        "ok",
        "",
        "unverified",
    ),
    "underbrace": (
        {
            "id": "underbrace",
            "problem": "Tom has 1 apple, buys 1 more, then 2 more. How many?",
            "answer": "4",
            "solution": "$\\underbrace{\\underbrace{1+1}_{2}+2}_{4} = 4$ and 1 + 1 + 2 = 4.\n"
            "\\boxed{\\underbrace{\\underbrace{4}_{4}}_{4}}",
        },
        "ok",
        "",
        "validated",
    ),
    "deep-braces": (
        {
            "id": "deep-braces",
            "problem": "Tom has 1 apple and 0 pears. How many?",
            "answer": DEEP,
            "solution": f"1 + 0 = 1 and ${DEEP} = 1$\n\\boxed{{{DEEP}}}",
        },
        "ok",
        "",
        "no_spans",  # the CoT is longer than the tiny teacher's context; see test_latex_bombs_in_cot_spans
    ),
    "unclosed-boxed": (
        {
            "id": "unclosed-boxed",
            "problem": "Tom has 2 apples and buys 2 more. How many?",
            "solution": "2 + 2 = 4 so \\boxed{4",
        },
        "unparseable_answer",
        "boxed",
        "no_gold",
    ),
    "unclosed-boxes": (
        {"id": "unclosed-boxes", "problem": "Tom has 2 apples.", "solution": "\\boxed{" * 14_000},
        "unparseable_answer",
        "boxed",
        "no_spans",
    ),
    # non-numeric gold answers: a recorded non-validated status
    "text-gold": (
        {
            "id": "text-gold",
            "problem": "Evelyn runs 3 miles then 4 more; Ann runs 5. Who runs most?",
            "answer": "\\text{Evelyn}",
            "solution": "Evelyn runs 3 + 4 = 7 miles.\n\\boxed{\\text{Evelyn}}",
        },
        "ok",
        "",
        "wrong_answer",
    ),
    "interval-gold": (
        {
            "id": "interval-gold",
            "problem": "Solve x - 2 <= 1.",
            "answer": "(-\\infty, 3]",
            "solution": "x <= 1 + 2 = 3.\n\\boxed{(-\\infty, 3]}",
        },
        "ok",
        "",
        "wrong_answer",
    ),
    "matrix-gold": (
        {
            "id": "matrix-gold",
            "problem": "Tom has 3 apples and 1 pear. Write (3 - 2, 1 + 1) as a column.",
            "answer": "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
            "solution": "It is 3 - 2 = 1 and 1 + 1 = 2.\n\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}",
        },
        "ok",
        "",
        "wrong_answer",
    ),
    # wrong JSON types and missing fields
    "answer-list": (
        {"id": "answer-list", "problem": "Tom has 3.", "answer": ["7"]},
        "invalid_row",
        "'answer'",
        "no_spans",
    ),
    "answer-dict": (
        {"id": "answer-dict", "problem": "Tom has 3.", "answer": {"v": 7}},
        "invalid_row",
        "'answer'",
        "no_spans",
    ),
    "answer-bool": (
        {"id": "answer-bool", "problem": "Tom has 3.", "answer": True},
        "invalid_row",
        "'answer'",
        "no_spans",
    ),
    "answer-null": (
        {"id": "answer-null", "problem": "Tom has 3.", "answer": None},
        "missing_answer",
        "gold",
        "no_spans",
    ),
    "answer-number": (
        {"id": "answer-number", "problem": "Tom has 3 apples and buys 4 more.", "answer": 7, "solution": OK_SOLUTION},
        "ok",
        "",
        "validated",
    ),
    "answer-nan": (
        '{"id": "answer-nan", "problem": "Tom has 3.", "answer": NaN}',
        "unparseable_answer",
        "gold",
        "no_spans",
    ),
    "problem-number": ({"id": "problem-number", "problem": 12, "answer": "1"}, "invalid_row", "'problem'", "no_spans"),
    "problem-list": (
        {"id": "problem-list", "problem": ["Tom"], "answer": "1"},
        "invalid_row",
        "'problem'",
        "no_spans",
    ),
    "solution-number": (
        {"id": "solution-number", "problem": "Tom has 3.", "answer": "3", "solution": 3},
        "invalid_row",
        "'solution'",
        "no_spans",
    ),
    "missing-problem": ({"id": "missing-problem", "answer": "1"}, "invalid_row", "'problem'", "no_spans"),
    "missing-answer": (
        {"id": "missing-answer", "problem": "Tom has 3 apples and buys 4 more.", "solution": "3 + 4 = 7"},
        "unparseable_answer",
        "boxed",
        "no_gold",
    ),
    # invalid JSON lines: the row keeps the line number as its id and in its reason
    "not-json": ("{not json", "invalid_json", "line", "no_spans"),
    "long-integer": ('{"id": "x", "answer": ' + "9" * 5000 + "}", "invalid_json", "line", "no_spans"),
    "deep-json": ("[" * 100_000 + "]" * 100_000, "invalid_json", "line", "no_spans"),
    "lone-surrogate": (
        '{"id": "y", "problem": "Tom has 3 \\ud800 apples.", "answer": "3"}',
        "invalid_json",
        "surrogate",
        "no_spans",
    ),
    "surrogate-pair": (
        '{"id": "surrogate-pair", "problem": "Tom has 3 \\ud83c\\udf4e and buys 4 more.", "answer": "7", '
        '"solution": "3 + 4 = 7\\n#### 7"}',
        "ok",
        "",
        "validated",
    ),
    "json-list": ("[1, 2]", "invalid_row", "JSON object", "no_spans"),
    "json-null": ("null", "invalid_row", "JSON object", "no_spans"),
}
NAMES = list(MATRIX)


def row_id(name: str) -> str:
    """The id a case's row carries: its own, or (when the line cannot be read) one made from the line number."""
    record, status = MATRIX[name][0], MATRIX[name][1]
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except (ValueError, RecursionError):
            record = None
    if isinstance(record, dict) and status != "invalid_json":
        return record["id"]
    return f"{STEM}-{NAMES.index(name) + 1:06d}"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_teacher) -> dict:
    """Every bad row in one file (starting with a byte-order mark), through every stage, with the tiny teacher."""
    tmp = tmp_path_factory.mktemp("bad-input")
    source = tmp / f"{STEM}.jsonl"
    write_jsonl(source, [MATRIX[name][0] for name in NAMES])
    source.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())  # Windows editors' BOM: not part of line 1
    options = {
        **load_preset("tiny"),
        "source": str(source),
        "test_fraction": 0.0,
        "teachers": [tiny_teacher],
        "verify_timeout": 2.0,
        "op_verify_timeout": 2.0,
    }
    configs = split_options(options)
    out = tmp / "run"
    started = time.monotonic()
    for name in BUILDERS:
        BUILDERS[name](out, configs[name]).build()
    seconds = time.monotonic() - started
    artifacts = {name: datasets.load_dataset(str(out / name))["train"].to_list() for name in BUILDERS}
    markers = {name: json.loads((out / ".mycelium" / f"{name}.json").read_text()) for name in BUILDERS}
    return {"rows": artifacts, "markers": markers, "seconds": seconds}


@pytest.mark.parametrize("name", NAMES)
def test_each_bad_row_comes_out_with_a_status_and_a_reason(run, name):
    _, status, reason_word, op_status = MATRIX[name]
    rows = {r["id"]: r for r in run["rows"]["op_pairs"]}
    row = rows[row_id(name)]
    assert row["status"] == status, row["status_reason"]
    assert reason_word in row["status_reason"] and bool(row["status_reason"]) == (status != "ok")
    assert row["op_status"] == op_status, row["op_status_reason"]
    assert bool(row["op_status_reason"]) == (op_status != "validated")
    if row["status"] == "ok":
        assert row["span_status"] in ("ok", "too_long") and row["finish_reason"] == "reference"
    if name.startswith("huge"):
        assert row["span_status"] == "too_long" and "context" in row["span_status_reason"]
    if name.startswith("bomb"):
        assert "no verdict" in row["op_status_reason"] and row["n_parse_errors"] >= 1


def test_rows_in_equal_rows_out_plus_counted_drops(run):
    ids = [row_id(name) for name in NAMES]
    for name in ("problems", "cot_traces", "jsd_spans", "iaf_maps", "clause_regions", "op_pairs"):
        assert [r["id"] for r in run["rows"][name]] == ids, name  # every row, in order, none doubled
    for name, marker in run["markers"].items():
        assert marker["rows_in"] == sum(marker["rows"].values()) + sum(marker["dropped"].values()), name
    pairs = run["rows"]["op_pairs"]
    validated = [r["id"] for r in pairs if r["validated"]]
    assert [r["id"] for r in run["rows"]["io_tags"]] == validated
    assert sum(run["markers"]["io_tags"]["dropped"].values()) == len(pairs) - len(validated)


def test_character_offsets_are_valid_indices_into_the_original_text(run):
    for row in run["rows"]["op_pairs"]:
        problem, cot = row["problem"], row["cot"] or ""
        assert len(row["jsd"]) == len(row["cot_token_offsets"])
        for o in row["cot_token_offsets"]:
            assert 0 <= o["char_start"] <= o["char_end"] <= len(cot)
        assert "".join(s["text"] for s in row["spans"]) == cot or not row["spans"]
        for s in row["spans"]:
            assert s["text"] == cot[s["char_start"] : s["char_end"]]
        for o in row["problem_token_offsets"]:
            assert 0 <= o["char_start"] < o["char_end"] <= len(problem)
        for top in (t for tops in row["iaf_top"] for t in tops):
            assert top["text"] == problem[top["char_start"] : top["char_end"]]
        for region in [*row["regions"], *(r for rs in row["span_regions"] for r in rs)]:
            assert 0 <= region["char_start"] < region["char_end"] <= len(problem)
            assert region["text"] == problem[region["char_start"] : region["char_end"]]
        stated: dict[tuple[int, int], set] = {}
        for v, a, b in problem_numbers(problem):
            stated.setdefault((a, b), set()).add(format_value(v))
        for op in row["ops"]:
            if op["region"]["char_start"] >= 0:
                assert op["region"]["text"] == problem[op["region"]["char_start"] : op["region"]["char_end"]]
            for operand in op["operands"]:
                if operand["source"] == "problem":
                    assert operand["value"] in stated[(operand["char_start"], operand["char_end"])]
    for row in run["rows"]["io_tags"]:
        assert all(0 <= a <= b <= len(row["problem"]) for a, b in row["offsets"])


@pytest.mark.parametrize(
    "name, written", [("zero-width", "1\u200b2"), ("fullwidth", "１２"), ("fullwidth-cot", "１２")]
)
def test_unusual_digits_are_read_as_the_numbers_they_are(run, name, written):
    row = next(r for r in run["rows"]["op_pairs"] if r["id"] == name)
    first = row["ops"][0]["operands"][0]
    assert first["value"] == "12" and first["source"] == "problem"
    assert row["problem"][first["char_start"] : first["char_end"]] == written


@pytest.mark.parametrize("name", ["arabic", "hebrew", "zero-width", "emoji", "fullwidth", "surrogate-pair"])
def test_unicode_problems_are_captured_and_placed(run, name):
    row = next(r for r in run["rows"]["op_pairs"] if r["id"] == name)
    assert row["span_status"] == "ok" and row["problem_token_offsets"] and row["regions"]  # offsets were checked
    covered = {i for o in row["problem_token_offsets"] for i in range(o["char_start"], o["char_end"])}
    assert {i for i, ch in enumerate(row["problem"]) if not ch.isspace()} <= covered  # the whole problem is read


def test_the_bad_run_is_quick(run):
    assert run["seconds"] < 240  # a hang would be minutes: every capture, parse and check runs under a limit


@pytest.mark.parametrize(
    "span, gold, status",
    [
        ("So $10^{10^{10}} = 5$.", "5", "no_ops"),
        ("So $9^{9^{9^9}} = 5$.", "5", "no_ops"),
        ("$\\underbrace{\\underbrace{1+1}_{2}+1}_{3} = 3$", "3", "no_ops"),
        (f"${DEEP} = 1$", "1", "no_ops"),
        (f"So {DEEP} = 1 and 1 + 0 = 1.", DEEP, "unverified"),  # the gold is too long to check: no verdict
        ("2 + 2 = 4 so \\boxed{4", "4", "validated"),  # an unclosed box does not hide the equation before it
        ("2 + 2 = 4.", "\\text{Evelyn}", "wrong_answer"),
        ("2 + 2 = 4.", "(-\\infty, 3]", "wrong_answer"),
        ("2 + 2 = 4.", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", "wrong_answer"),
    ],
)
def test_latex_bombs_in_cot_spans(span, gold, status):
    started = time.monotonic()
    problem = "Tom has 2 apples and 2 pears, 1 plum and 0 figs. How many fruits?"
    batch = {"problem": [problem], "answer": [gold], "spans": [[{"text": span}]], "span_regions": [[[]]]}
    out = make_ops(batch, verify_timeout=2)
    assert out["op_status"][0] == status, out["op_status_reason"][0]
    assert status == "validated" or out["op_status_reason"][0]
    assert time.monotonic() - started < 30


def test_problems_too_long_for_spacy_are_not_parsed_when_nothing_needs_them():
    problem = "a " * 500_001  # past spaCy's max_length (1,000,000): parsing it is an error, not a result
    regions = make_regions(
        {"problem": [problem], "iaf_top": [[[]]], "spans": [[{"text": "x"}]]},
        spacy_pipeline=None,
        anchors=3,
        min_weight=0.0,
    )
    assert regions["regions"] == [[]]
    out = make_ops({"problem": [problem], "answer": ["1"], "spans": [[]], "span_regions": [[]]}, verify_timeout=2)
    assert out["op_status"] == ["no_spans"]


@pytest.mark.parametrize(
    "text",
    ["\\boxed{" * 14_000, "\\boxed{" * 14_000 + "\\boxed{7}", "{" * 50_000 + "\\boxed{3}" + "}" * 50_000],
)
def test_answer_extraction_is_linear_on_unclosed_boxes(text):
    started = time.monotonic()
    extract_boxed(text), extract_answer(text), normalize_gold(text, "math")
    assert time.monotonic() - started < 2


def test_extraction_keeps_its_meaning():
    assert extract_boxed("\\boxed{5} then \\boxed{") == "5"
    assert extract_boxed("\\boxed{\\boxed{1}+2}") == "1"  # the last box opened
    assert extract_boxed("\\boxed{\\{a\\}} and \\fbox {x{y}}") == "x{y}"
    assert normalize_gold(float("nan")) == (None, "unparseable_answer")
    assert normalize_gold(10**400) == (str(10**400), "ok")
    assert normalize_gold("1\u200b6") == ("16", "ok")


@pytest.mark.parametrize("gold", ["10^{10^{10}}", "9^{9^{9^9}}"])
def test_a_latex_bomb_check_stops_at_its_time_limit(gold):
    answers_match("1/2", "0.5x", timeout=30)  # the worker is started (its imports are not part of any limit)
    started = time.monotonic()
    verdict = answers_match("5", gold, timeout=1.0)
    assert verdict.match is None and verdict.method in ("timeout", "error")  # error: the worker's memory cap
    assert time.monotonic() - started < 6  # 1 s and the kill: the limit is the job's, with no start-up allowance


def test_duplicate_ids_are_an_error_naming_the_id(tmp_path, capsys):
    source = write_jsonl(
        tmp_path / "dup.jsonl",
        [
            {"id": "p-7", "problem": "1 + 1?", "answer": "2"},
            {"id": "q", "problem": "2?", "answer": "2"},
            {"id": "p-7", "problem": "3?", "answer": "3"},
        ],
    )
    assert main(["build", "problems", "--out", str(tmp_path / "run"), "--source", str(source)]) == 2
    assert "duplicate id 'p-7'" in capsys.readouterr().err and not (tmp_path / "run" / "problems").exists()


STAGES = [
    ("cot_traces", "mycelium_datasets.cot_traces", "build_cot_traces", "CotTracesConfig", "solution"),
    ("jsd_spans", "mycelium_datasets.jsd_spans", "build_jsd_spans", "JsdSpansConfig", "cot"),
    ("iaf_maps", "mycelium_datasets.iaf_maps", "build_iaf_maps", "IafMapsConfig", "problem_attn"),
    ("clause_regions", "mycelium_datasets.clause_regions", "build_clause_regions", "ClauseRegionsConfig", "iaf_top"),
    ("op_pairs", "mycelium_datasets.op_pairs", "build_op_pairs", "OpPairsConfig", "span_regions"),
    ("io_tags", "mycelium_datasets.student_sets", "build_io_tags", "StudentSetsConfig", "validated"),
]


@pytest.mark.parametrize("stage, module, function, config, column", STAGES, ids=[s[0] for s in STAGES])
def test_a_missing_input_column_is_an_error_naming_it(tmp_path, stage, module, function, config, column):
    import importlib

    mod = importlib.import_module(module)
    data = datasets.DatasetDict(train=datasets.Dataset.from_dict({"id": ["a"], "problem": ["Tom has 3."]}))
    args = (data, getattr(mod, config)(), *([tmp_path] if stage in ("cot_traces", "jsd_spans") else []))
    from mycelium_datasets.columns import MissingColumnsError

    with pytest.raises(MissingColumnsError, match=f"needs? input columns .*'{column}'"):
        getattr(mod, function)(*args)


@pytest.mark.parametrize("solve", ["solve", "solve_chain"])
def test_the_solver_answers_none_with_a_named_stage_for_each_bad_problem(tiny_solver, solve):
    reader = "decoder" if solve == "solve" else "tagger"  # the decoder reads 256 tokens, the tagger 512
    bad = {
        "": ("SEGMENTATION", "empty"),
        " \t\n ": ("SEGMENTATION", "empty"),
        "A problem without any number at all, is it?": ("EXTRACTION", "operand"),
        HUGE: ("SEGMENTATION", f"longer than the {reader} reads"),  # not answered from its beginning alone
        "🍎🍎🍎 🍌🍌 👨‍👩‍👧 🤔❓": ("EXTRACTION", "operand"),
        None: ("SEGMENTATION", "not a string"),
    }
    problems = list(bad)
    traces = getattr(tiny_solver, solve)([*problems, "Tom has 3 apples and buys 4 more."])
    assert len(traces) == len(problems) + 1
    for problem, trace in zip(problems, traces):
        stage, word = bad[problem]
        assert trace["answer"] is None and trace["stage"] == stage and word in trace["reason"], trace["reason"]
    assert traces[-1]["stage"] in (None, "EXECUTION") and (traces[-1]["answer"] is None) == bool(traces[-1]["stage"])


def test_cli_solve_prints_a_stage_for_a_bad_problem(tiny_solver, tmp_path: Path, capsys):
    save_solver(tiny_solver, tmp_path)
    assert main(["solve", "--models", str(tmp_path), "", "🍎🍎🍎 🤔"]) == 0
    out = capsys.readouterr().out
    assert out.count("answer: None") == 2 and "failed at SEGMENTATION" in out


@pytest.mark.parametrize("command", ["solve", "eval"])
def test_models_given_a_run_folder_points_at_its_models_folder(command, tiny_solver, tmp_path: Path, capsys):
    run = tmp_path / "run"
    save_solver(tiny_solver, run / "models")
    (run / ".mycelium").mkdir()
    argv = {
        "solve": ["solve", "--models", str(run), "What is 2 + 3?"],
        "eval": ["eval", "--models", str(run), "--source", "gsm_symbolic", "--out", str(tmp_path / "e")],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "run folder" in err and str(run / "models") in err and "train it" not in err
    assert not (tmp_path / "e").exists()
    if command == "solve":  # and the folder it names is the one that answers
        assert main(["solve", "--models", str(run / "models"), "What is 2 + 3?"]) == 0


# -- the Python API's inputs: a string is one problem, a path may be a str --------------------------------------------

PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def _answered(trace: dict) -> tuple:
    return trace["answer"], trace["stage"], trace["ops"], trace["units"]


@pytest.mark.parametrize("solve", ["solve", "solve_chain", "solve_with_decoder"])
def test_a_string_is_one_problem_and_a_list_or_a_tuple_is_a_batch(tiny_solver, solve):
    method = getattr(tiny_solver, solve)
    one = method(PROBLEM)  # as a transformers pipeline takes one input: one trace, never one per character
    assert isinstance(one, dict) and one["problem"] == PROBLEM
    batch = method([PROBLEM, "Ann has 5 pens and loses 2."])
    assert isinstance(batch, list) and len(batch) == 2
    assert _answered(batch[0]) == _answered(one)
    assert [_answered(t) for t in method((PROBLEM,))] == [_answered(one)]
    assert method([]) == []


def test_a_single_problem_takes_its_own_units(tiny_solver):
    units = [(0, 24)]  # "Tom has 3 apples and buy"
    one = tiny_solver.solve_chain(PROBLEM, units=units)
    assert [(u["char_start"], u["char_end"]) for u in one["units"]] == units
    assert _answered(one) == _answered(tiny_solver.solve_chain([PROBLEM], units=[units])[0])


@pytest.mark.parametrize(
    "problems", [PROBLEM.encode(), 7, {"problem": PROBLEM}, None], ids=["bytes", "int", "dict", "none"]
)
@pytest.mark.parametrize("solve", ["solve", "solve_chain", "solve_with_decoder"])
def test_what_is_neither_a_string_nor_a_list_of_them_is_a_type_error(tiny_solver, solve, problems):
    with pytest.raises(TypeError, match="string or a list"):
        getattr(tiny_solver, solve)(problems)


def _same(batch: dict) -> dict:
    return batch


class _PathLike:
    """An ``os.PathLike`` that is not a ``pathlib.Path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __fspath__(self) -> str:
        return self.path


@pytest.mark.parametrize("kind", ["str", "pathlike"])
def test_work_dirs_take_a_str_or_any_path_like(tmp_path, tiny_teacher, kind, monkeypatch):
    from mycelium_datasets.cot_traces import CotTracesConfig, build_cot_traces
    from mycelium_datasets.jsd_spans import JsdSpansConfig, build_jsd_spans
    from mycelium_datasets.problems import ProblemsConfig, build_problems
    from mycelium_datasets.runner import map_in_parts

    monkeypatch.chdir(tmp_path)
    as_kind = {"str": str, "pathlike": _PathLike}[kind]
    problems = build_problems(ProblemsConfig(size=4, test_fraction=0.0))
    traces = build_cot_traces(problems, CotTracesConfig(), work_dir=as_kind("work/cot"))
    assert len(traces["train"]) == 4 and any((tmp_path / "work" / "cot").rglob("*.parquet"))
    spans = build_jsd_spans(traces, JsdSpansConfig(capture_teacher=tiny_teacher), work_dir=as_kind("work/spans"))
    assert len(spans["train"]) == 4 and any((tmp_path / "work" / "spans").rglob("*.parquet"))
    train = problems["train"]
    mapped = map_in_parts(train, _same, work_dir=as_kind("work/map"), features=train.features)
    assert mapped.to_list() == train.to_list() and any((tmp_path / "work" / "map").glob("*.parquet"))
