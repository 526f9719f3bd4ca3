"""The problems artifact: every source shape, bad rows kept with a status, splits by template, clear errors."""

from __future__ import annotations

import json

import pytest

from mycelium_datasets.problems import FEATURES, ProblemsConfig, SourceError, build_problems, read_source

from conftest import shared_file, write_jsonl


def test_gsm_symbolic_is_deterministic_and_split_by_template():
    a = build_problems(ProblemsConfig(size=60, seed=7))
    b = build_problems(ProblemsConfig(size=60, seed=7))
    assert a["train"].to_list() == b["train"].to_list() and a["test"].to_list() == b["test"].to_list()
    train_templates, test_templates = set(a["train"]["template"]), set(a["test"]["template"])
    assert train_templates and test_templates and not train_templates & test_templates
    assert len(a["train"]) + len(a["test"]) == 60
    row = a["train"][0]
    assert row["status"] == "ok" and row["answer"] and row["solution"]
    assert "Give the result as your final answer" not in row["problem"]
    assert "variables" in json.loads(row["meta_json"])
    assert a["train"].features == FEATURES


def test_another_seed_gives_other_problems():
    a = read_source(ProblemsConfig(size=5, seed=1))
    b = read_source(ProblemsConfig(size=5, seed=2))
    assert [r["problem"] for r in a] != [r["problem"] for r in b]


def test_jsonl_shapes_and_bad_rows(tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
            {"problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "solution": "It is $\\boxed{\\frac{3}{4}}$."},
            {"id": "p3", "problem": "What is 2+2?", "answer": 4},
            {"id": "p4", "problem": "A problem without a gold answer."},
            {"id": "p5", "problem": "", "answer": "1"},
            {"id": "p6", "problem": 12, "answer": "1"},
            {"id": "p7", "text": "wrong field"},
            "{not json",
            "[1, 2]",
            {"question": "GSM8K row with no final line", "answer": "it is 5"},
            {"id": "p11", "problem": "x", "answer": ["a", "list"]},
        ],
    )
    rows = build_problems(ProblemsConfig(source=str(path), test_fraction=0.0))["train"].to_list()
    assert len(rows) == 11  # rows in == rows out: nothing dropped
    by_status = [(r["shape"], r["status"], r["answer"]) for r in rows]
    assert by_status[0] == ("gsm8k", "ok", "7")
    assert by_status[1] == ("math", "ok", "\\frac{3}{4}")
    assert by_status[2] == ("plain", "ok", "4")
    assert rows[3]["status"] == "missing_answer"
    assert rows[4]["status"] == "empty_problem" and "'problem'" in rows[4]["status_reason"]
    assert rows[5]["status"] == "invalid_row" and "'problem' must be a string" in rows[5]["status_reason"]
    assert rows[6]["status"] == "invalid_row" and "missing field 'problem'" in rows[6]["status_reason"]
    assert rows[7]["status"] == "invalid_json" and "line 8" in rows[7]["status_reason"]
    assert rows[8]["status"] == "invalid_row" and "JSON object" in rows[8]["status_reason"]
    assert rows[9]["status"] == "unparseable_answer" and "####" in rows[9]["status_reason"]
    assert rows[10]["status"] == "invalid_row" and "'answer'" in rows[10]["status_reason"]
    assert rows[2]["id"] == "p3" and rows[0]["id"] == "mixed-000001"


def test_limit_and_hash_split(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(50)])
    d = build_problems(ProblemsConfig(source=str(path), limit=40, test_fraction=0.5))
    assert len(d["train"]) + len(d["test"]) == 40
    assert 5 < len(d["test"]) < 35
    again = build_problems(ProblemsConfig(source=str(path), limit=40, test_fraction=0.5))
    assert d["test"]["id"] == again["test"]["id"]


def test_duplicate_ids_are_an_error_naming_them(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "problem": "1+1?", "answer": "2"}] * 2)
    with pytest.raises(SourceError, match="duplicate id 'a'.*rows 1 and 2"):
        read_source(ProblemsConfig(source=str(path)))


def test_a_mix_keeps_each_source_its_rows_ids_and_split(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(30)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"problem": f"What is {i}*2?", "answer": str(2 * i)} for i in range(20)])
    alone = {
        name: build_problems(ProblemsConfig(source=str(path), limit=25, test_fraction=0.3))
        for name, path in (("a", a), ("b", b))
    }
    mix = build_problems(ProblemsConfig(source=f"{a}, {b}", limit=25, test_fraction=0.3))
    for split in ("train", "test"):  # the same rows, ids and split as each source alone: a mix adds, never moves
        assert list(mix[split]["id"]) == list(alone["a"][split]["id"]) + list(alone["b"][split]["id"])
        assert set(mix[split]["source"]) == {"a", "b"}
    assert len(mix["train"]) + len(mix["test"]) == 25 + 20  # limit applies to each source


def test_a_mix_refuses_a_source_twice_an_empty_name_or_a_missing_part(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"problem": "1+1?", "answer": "2"}])
    with pytest.raises(SourceError, match="twice"):
        ProblemsConfig(source=f"{a},{a}")
    with pytest.raises(SourceError, match="empty name"):
        ProblemsConfig(source=f"{a},")
    with pytest.raises(SourceError, match="not found"):
        ProblemsConfig(source=f"{a},/nonexistent/b.jsonl")
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a-000001", "problem": "2+2?", "answer": "4"}])
    with pytest.raises(SourceError, match="duplicate id 'a-000001'"):
        read_source(ProblemsConfig(source=f"{a},{dup}"))


def test_empty_source_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(SourceError, match="has no problems"):
        read_source(ProblemsConfig(source=str(path)))


def test_unknown_source_lists_valid_choices():
    with pytest.raises(SourceError, match="valid choices: gsm_symbolic, gsm8k, math500"):
        ProblemsConfig(source="gsm9k")
    with pytest.raises(SourceError, match="not found"):
        ProblemsConfig(source="/nonexistent/file.jsonl")


def test_hub_source_offline_says_it_cannot_reach_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="cannot reach the Hugging Face Hub.*openai/gsm8k"):
        read_source(ProblemsConfig(source="gsm8k"))
    with pytest.raises(SourceError, match="cannot reach the Hugging Face Hub.*some-org/some-data"):
        read_source(ProblemsConfig(source="some-org/some-data"))


def test_bad_config_values():
    with pytest.raises(ValueError, match="test_fraction"):
        ProblemsConfig(test_fraction=1.5)
    with pytest.raises(ValueError, match="limit"):
        ProblemsConfig(limit=0)


def test_real_gsm8k_file():
    path = shared_file("gsm8k_train.jsonl")
    rows = read_source(ProblemsConfig(source=str(path), limit=200))
    assert len(rows) == 200 and all(r["status"] == "ok" for r in rows)
    assert rows[0]["answer"] == "72" and "<<" in rows[0]["solution"]
    assert all(r["answer"].lstrip("-").replace(".", "").isdigit() for r in rows)


def test_real_math_file():
    path = shared_file("math500_dev.jsonl")
    rows = read_source(ProblemsConfig(source=str(path)))
    assert len(rows) == 250 and all(r["status"] == "ok" for r in rows)
    assert rows[0]["id"] and rows[0]["solution"] and "\\boxed" in rows[0]["solution"]


def test_missing_shared_data_skips_on_a_fresh_machine_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="absent"):
        shared_file("no-such-file.jsonl")
    monkeypatch.setenv("MYCELIUM_REQUIRE_SHARED_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="required here"):
        shared_file("no-such-file.jsonl")


def test_an_equation_becomes_a_reference_cot_one_step_a_line(tmp_path):
    from mycelium_datasets.worked import solution_from_equation

    assert solution_from_equation("x=25000.0-(1500.0*8.0)") == "1500 * 8 = 12000\n25000 - 12000 = 13000\n#### 13000"
    assert solution_from_equation("7+2=9") == "7 + 2 = 9\n#### 9"  # ASDiv writes the result on the right
    assert solution_from_equation("X=16-3-4") == "16 - 3 = 13\n13 - 4 = 9\n#### 9"  # a chain, one step at a time
    assert solution_from_equation("x=3/4") == "3 / 4 = 0.75\n#### 0.75"
    for unwritable in ("x+3=5", "x=5/0", "x=5", "6-2=4; 4+1=5", "3<5", "x=2^3", "", None, 12, "x=" + "1+" * 400 + "1"):
        assert solution_from_equation(unwritable) is None, unwritable
    path = write_jsonl(
        tmp_path / "mwp.jsonl",
        [
            {
                "id": "m1",
                "problem": "Tom has 3 boxes of 4 apples. How many apples?",
                "answer": "12",
                "equation": "x=3*4",
            },
            {"id": "m2", "problem": "Ann has 5 pens and 2 more. How many?", "answer": "7", "equation": "x+5=2"},
            {"id": "m3", "problem": "What is 2+2?", "answer": "4", "equation": "2+2=4", "solution": "2 + 2 = 4"},
        ],
    )
    rows = build_problems(ProblemsConfig(source=str(path), test_fraction=0.0))["train"].to_list()
    assert [(r["shape"], r["status"], r["solution"]) for r in rows] == [
        ("equation", "ok", "3 * 4 = 12\n#### 12"),
        ("equation", "ok", None),  # kept, without a reference CoT: a teacher writes its own
        ("plain", "ok", "2 + 2 = 4"),  # a given solution wins
    ]
    assert json.loads(rows[0]["meta_json"])["equation"] == "x=3*4"


def test_real_mawps_and_asdiv_equations_become_reference_cots():
    from mycelium_datasets.answers import answers_match

    for name, written in (("mawps.jsonl", 0.98), ("asdiv.jsonl", 0.65)):
        rows = read_source(ProblemsConfig(source=str(shared_file(f"mwp/{name}"))))
        with_cot = [r for r in rows if r["status"] == "ok" and r["solution"]]
        assert len(with_cot) >= written * len(rows), (name, len(with_cot), len(rows))
        agree = sum(answers_match(r["solution"].rsplit("#### ", 1)[1], r["answer"]).match for r in with_cot)
        assert agree >= 0.9 * len(with_cot), (name, agree, len(with_cot))


def test_a_mix_names_each_source_and_its_terms_in_the_lineage(tmp_path):
    from mycelium_datasets.provenance import lineage_licenses, source_provenance

    a = write_jsonl(tmp_path / "a.jsonl", [{"problem": "1+1?", "answer": "2"}])
    provenance = source_provenance(ProblemsConfig(source=f"gsm_symbolic,{a}"))
    assert provenance["kind"] == "mix" and [p["name"] for p in provenance["parts"]] == ["gsm_symbolic", "a.jsonl"]
    parts = lineage_licenses({"source": provenance})
    assert [(p.name, p.license) for p in parts] == [("gsm_symbolic", "apache-2.0"), ("a.jsonl", None)]


def test_a_yaml_list_of_sources_is_a_mix(tmp_path):
    from mycelium_run.job import load_preset

    config = tmp_path / "mix.yaml"
    config.write_text("source: [gsm_symbolic, ../x.jsonl]\n")
    assert load_preset(str(config))["source"] == "gsm_symbolic,../x.jsonl"
