"""jsd_spans and iaf_maps on real traces, bad input as status rows, sharded capture, and `mycelium show`."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from mycelium_datasets.builders import CotTracesBuilder, IafMapsBuilder, JsdSpansBuilder, ProblemsBuilder
from mycelium_datasets.cot_traces import CotTracesConfig
from mycelium_datasets.iaf_maps import IafMapsConfig, build_iaf_maps
from mycelium_datasets.jsd_spans import JsdSpansConfig, build_jsd_spans, problem_token_span
from mycelium_datasets.problems import ProblemsConfig
from mycelium_datasets.segment import check_spans
from mycelium_run.cli import main

from conftest import check_token_alignment, read_artifact, run_single_and_distributed, write_jsonl


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, teacher_path):
    """gsm_symbolic problems with reference traces, plus a few bad rows, through jsd_spans and iaf_maps."""
    out = tmp_path_factory.mktemp("run")
    src = write_jsonl(
        out / "p.jsonl",
        [
            {
                "id": "natalia",
                "problem": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
                "many clips in May. How many clips did Natalia sell altogether in April and May?",
                "answer": "72",
                "solution": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
                "clips altogether in April and May.\n#### 72",
            },
            {"id": "one-token", "problem": "What is 2 + 2?", "answer": "4", "solution": "4"},
            {"id": "no-solution", "problem": "What is 3 + 3?", "answer": "6"},
            {"id": "empty", "problem": "", "answer": "1"},
        ],
    )
    ProblemsBuilder(out, ProblemsConfig(source=str(src), test_fraction=0.0)).build()
    CotTracesBuilder(out, CotTracesConfig()).build()
    JsdSpansBuilder(out, JsdSpansConfig()).build()
    IafMapsBuilder(out, IafMapsConfig()).build()
    return out


def test_spans_on_a_real_trace(run_dir):
    rows = {r["id"]: r for r in datasets.load_dataset(str(run_dir / "jsd_spans"))["train"]}
    row = rows["natalia"]
    check_spans(row["cot"], row["spans"])
    assert [s["text"].strip() for s in row["spans"]] == row["cot"].split("\n")
    assert len(row["jsd"]) == len(row["cot_token_offsets"]) and row["jsd"][0] == 0
    check_token_alignment([(o["char_start"], o["char_end"]) for o in row["cot_token_offsets"]], row["spans"])
    assert row["span_status"] == "ok" and row["segmenter"] == "jsd_clause"
    n_problem = len(row["problem_token_offsets"])
    assert n_problem > 20 and len(row["problem_attn"]) == len(row["cot_token_offsets"])
    assert all(len(a) == n_problem for a in row["problem_attn"])
    # problem offsets point into the problem text, not the prompt
    first = row["problem_token_offsets"][0]
    assert row["problem"][first["char_start"] : first["char_end"]] == "Natal"[: first["char_end"]]


def test_bad_traces_get_a_status_not_an_empty_list(run_dir):
    rows = {r["id"]: r for r in datasets.load_dataset(str(run_dir / "jsd_spans"))["train"]}
    assert rows["one-token"]["span_status"] == "cot_too_short" and len(rows["one-token"]["spans"]) == 1
    assert rows["no-solution"]["span_status"] == "no_cot" and rows["no-solution"]["span_status_reason"]
    assert rows["empty"]["span_status"] == "no_cot"
    assert len(rows) == 4  # rows in == rows out


def test_iaf_sums_to_one_and_points_into_the_problem(run_dir):
    rows = {r["id"]: r for r in datasets.load_dataset(str(run_dir / "iaf_maps"))["train"]}
    row = rows["natalia"]
    assert "problem_attn" not in row
    assert len(row["iaf"]) == len(row["spans"]) == len(row["iaf_top"])
    for iaf, top in zip(row["iaf"], row["iaf_top"]):
        assert sum(iaf) == pytest.approx(1.0, abs=1e-4)
        assert [t["weight"] for t in top] == sorted((t["weight"] for t in top), reverse=True)
        for t in top:
            assert row["problem"][t["char_start"] : t["char_end"]] == t["text"]
    assert rows["no-solution"]["iaf"] == []


def test_iaf_is_computed_from_kept_attention():
    spans = datasets.Dataset.from_dict(
        {
            "id": ["a"],
            "problem": ["ab cd"],
            "spans": [[{"token_start": 0, "token_end": 2, "char_start": 0, "char_end": 3, "text": "x y"}]],
            "problem_attn": [[[0.1, 0.3], [0.1, 0.1]]],
            "problem_token_offsets": [[{"char_start": 0, "char_end": 2}, {"char_start": 3, "char_end": 5}]],
        }
    )
    row = build_iaf_maps(datasets.DatasetDict(train=spans), IafMapsConfig(top_k=1))["train"][0]
    assert np.allclose(row["iaf"][0], [1 / 3, 2 / 3], atol=1e-6)
    assert row["iaf_top"][0] == [{"char_start": 3, "char_end": 5, "weight": pytest.approx(2 / 3), "text": "cd"}]


def test_problem_tokens_exclude_the_template(teacher_path):
    from transformers import AutoTokenizer

    from mycelium_datasets.teacher import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    problem = "Sam has 3 pens."
    prompt = build_prompt(tokenizer, problem, "Solve it. Sam has 3 pens.")  # the system text repeats the problem
    offsets = [
        tuple(o) for o in tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    indices, problem_offsets = problem_token_span(prompt, problem, offsets)
    start = prompt.rfind(problem)
    assert all(offsets[i][0] >= start - 1 for i in indices)  # only the user turn's copy, not the system text
    assert (
        "".join(problem[o["char_start"] : o["char_end"]] for o in problem_offsets).replace(" ", "") == "Samhas3pens."
    )


def test_show_writes_a_page_and_a_plot(run_dir, tmp_path, capsys):
    page = tmp_path / "natalia.html"
    assert main(["show", str(run_dir), "--id", "natalia", "--out", str(page)]) == 0
    text = page.read_text()
    assert "displacy" in text.lower() or "spans" in text  # displaCy span markup
    assert "Natalia sold 48/2" in text and "data:image/png;base64," in text
    assert page.with_suffix(".jsd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["show", str(run_dir), "--id", "nope", "--out", str(page)]) == 2
    assert "no row with id 'nope'" in capsys.readouterr().err


def test_show_tells_neighbouring_spans_apart_and_gives_each_operation_one_colour():
    from mycelium_datasets.segment import SEGMENTERS
    from mycelium_datasets.show import BOUNDARY_RULES, span_colours

    steps = span_colours([f"S{i + 1}" for i in range(12)])
    assert all(steps[f"S{i}"] != steps[f"S{i + 1}"] for i in range(1, 12))
    ops = span_colours(["op0 mul", "op1 add", "op2 mul", "op3 div"])
    assert ops["op0 mul"] == ops["op2 mul"] and len({ops["op0 mul"], ops["op1 add"], ops["op3 div"]}) == 3
    assert set(BOUNDARY_RULES) == set(SEGMENTERS)  # the page says why the boundaries are where they are


@pytest.mark.parametrize("folder", ["existing", "ends-in-slash/"])
def test_show_into_a_folder_writes_id_html_inside_it(folder, run_dir, tmp_path):
    if folder == "existing":
        (tmp_path / folder).mkdir()
    assert main(["show", str(run_dir), "--id", "natalia", "--out", f"{tmp_path}/{folder}"]) == 0
    written = tmp_path / folder.rstrip("/")
    assert written.is_dir() and sorted(p.name for p in written.iterdir()) == ["natalia.html", "natalia.jsd.png"]


def test_capture_sharded_over_two_processes_equals_one(tmp_path, tiny_teacher):
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "id": f"q{i}",
                "problem": f"Tom has {i} apples and buys {i + 2} more. How many now?",
                "answer": str(2 * i + 2),
                "solution": f"Tom has {i} + {i + 2} = {2 * i + 2} apples.\nThe answer is {2 * i + 2}.",
            }
            for i in range(5)
        ],
    )
    common = [
        "build",
        "jsd_spans",
        "--source",
        str(src),
        "--test_fraction",
        "0",
        "--teachers",
        tiny_teacher,
        "--capture_part_size",
        "2",
        "--log_level",
        "debug",  # each part written is a debug line
    ]
    one, two, stderr = run_single_and_distributed(common, tmp_path, port=29541)
    assert "jsd_spans/train (process 2 of 2): wrote w002-r001-p" in stderr  # the second rank captured its own shard
    a = read_artifact(one / "jsd_spans")["train"]  # from disk: load_dataset would answer both from one cache entry
    b = read_artifact(two / "jsd_spans")["train"]
    assert [r["id"] for r in b] == [f"q{i}" for i in range(5)]
    for x, y in zip(a, b):
        floats = ("jsd", "problem_attn")
        assert {k: v for k, v in x.items() if k not in floats} == {k: v for k, v in y.items() if k not in floats}
        assert np.allclose(x["jsd"], y["jsd"], atol=1e-6)
        assert np.allclose(np.asarray(x["problem_attn"]), np.asarray(y["problem_attn"]), atol=1e-6)


def test_config_errors():
    with pytest.raises(ValueError, match="valid choices: jsd, sentence, jsd_clause"):
        JsdSpansConfig(segmenter="words")
    with pytest.raises(ValueError, match="needs input columns"):
        build_jsd_spans(datasets.DatasetDict(train=datasets.Dataset.from_dict({"id": ["a"]})), JsdSpansConfig(), "w")


def test_prompt_longer_than_the_context_is_a_status_row(tiny_teacher):
    from mycelium_datasets.jsd_spans import make_spans

    long_problem = "Tom has 3 apples. " * 400  # ~2,400 tokens, the tiny teacher's context is 1,024
    batch = {
        "id": ["long"],
        "prompt": [f"user: {long_problem}\nassistant:"],
        "problem": [long_problem],
        "cot": ["He has 3 apples."],
        "status": ["ok"],
        "teacher": [tiny_teacher],
    }
    out = make_spans(batch, capture_teacher=None, layers=[], segmenter="sentence", segmenter_kwargs={}, chunk_rows=64)
    assert out["span_status"] == ["too_long"] and "context" in out["span_status_reason"][0]
    assert out["spans"] == [[]]
