"""Operations from CoTs: equations found, provenance, execution validation, status rows, no executed text."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import datasets
import pytest

from mycelium_datasets.arith import parse_value
from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.equations import (
    glued_units,
    latex_statements,
    math_segments,
    plain_algebra,
    plain_equations,
)
from mycelium_datasets.numbers import problem_numbers
from mycelium_datasets.op_graph import execute, named_ops, ops_for_trace, step_numbers, validate_trace
from mycelium_datasets.op_pairs import make_ops
from mycelium_run.job import split_options

from conftest import write_jsonl

NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Natalia sold 48/2 = 24 clips in May.", [("48/2", "24")]),
        ("losing €57/hour * 7 hours = €399", [("€57 * 7", "399")]),
        ("so 16 - 3 - 4 = 9 eggs = 9", [("16 - 3 - 4", "9")]),
        ("She paid $1,200 * 20% = $240.", [("$1,200 * 20%", "240")]),
        ("the total is half * 188 beetles = 94 grasshoppers", [("(1/2) * 188", "94")]),
        ("Let x = 5 and y = 3", []),
        ("   - So 90 plants - 17 owned = 73 plants", [("90 - 17", "73")]),
        # as GSM8K train writes them (gsm8k_train-004811, -005257, -000054, -001128, -002300, Geoffrey's games):
        # a leading decimal point, an en dash or a minus sign, a capital X, a currency sign after the number
        ("She saves $400 a month because 4,000 x .1 = 400", [("4,000 * .1", "400")]),
        ("The proportion won by Archibald is .4 because 12 / 30 = .4", [("12 / 30", ".4")]),
        ("salt: 2 liters * 20% = .4 liters", [("2 * 20%", ".4")]),
        (".4 liters * 1000 ml/liter = 400 ml", [(".4 * 1000", "400")]),
        ("This leaves 1000 – 500 = 500 paper cranes", [("1000 - 500", "500")]),
        ("Caleb spent $40 − $4 = $36 more", [("$40 - $4", "36")]),
        ("64 liters of diesel fuel cost 0.5 X 64 = 32 €", [("0.5 * 64", "32")]),
        ("the total price of video games: 35€ X 3€/game = 105€", [("35 * 3", "105")]),
        ("an age range 5–7 years", []),
        # op_pairs 2.5.0 (gsm8k_train-001692, -000233, -006933, -003215, -003406, -006514, -001323): long unit
        # phrases, hyphenated units, cm³ and ml against the number, "500(.40)", "√(144)"
        (
            "18 hours from New Orleans to New York + 16 hours in New York + 24 hours from New York to San Francisco "
            "= 58 hours.",
            [("18 + 16 + 24", "58")],
        ),
        ("3 sets * 15 push-ups/set = 45 push-ups.", [("3 * 15", "45")]),
        ("500 pounds of ground mince in total – 200 pounds of ground mince = 300 pounds", [("500 - 200", "300")]),
        ("it will have a volume of (500+200)cm³ = 700cm³", [("(500+200)", "700")]),
        ("40 baths * 10ml of bubble bath per bath = 400ml of bubble bath.", [("40 * 10", "400")]),
        ("Juniors:500(.40)=200", [("500*(.40)", "200")]),
        ("12 feet per side because √(144) = 12", [("sqrt((144))", "12")]),
        ("we get 2b - 5 = 3(b - 5)", []),  # algebra: one letter is no unit (tier 2 reads it)
        ("so 2x+140=198", []),
        # arithmetic in words (gsm8k_train-001021, -004652, -002135): signs between numbers
        ("because 45 plus 30 plus 50 plus 25 equals 150", [("45 + 30 + 50 + 25", "150")]),
        ("He has two weeks seven times 2 equals 14.", [("7 * 2", "14")]),
        ("She can drink 8 ounces because 32 - 24 equals 8.", [("32 - 24", "8")]),
        ("The average weight is 12 pounds because 48 divided by 4 is 12.", [("48 / 4", "12")]),
        ("If 2/3 of the tank equals 16 gallons", []),  # not arithmetic: "equals" after words, no operation word
        ("Since 4/7 is equal to $24, then", []),
        ("2 times as many as the 3 he had", []),
    ],
)
def test_plain_equations(text, expected):
    assert [(e, r) for e, r, _ in plain_equations(text)] == expected


def spans_of(*texts):
    return [{"text": t} for t in texts]


def test_provenance_and_execution():
    spans = spans_of("Natalia sold 48/2 = 24 clips in May.\n", "Natalia sold 48+24 = 72 clips altogether.\n")
    ops, errors = ops_for_trace(NATALIA, spans, [[], []])
    assert errors == 0 and [op["op"] for op in ops] == ["div", "add"]
    first = ops[0]["operands"]
    assert first[0]["source"] == "problem" and NATALIA[first[0]["char_start"] : first[0]["char_end"]] == "48"
    # "half as many": the 2 the CoT divides by is the word "half", read as 1/2 and as its denominator 2
    assert first[1]["source"] == "problem" and NATALIA[first[1]["char_start"] : first[1]["char_end"]] == "half"
    second = ops[1]["operands"]
    assert second[1] == {"value": "24", "source": "op", "char_start": -1, "char_end": -1, "op_index": 0}
    assert execute(ops, NATALIA) == 72


def test_number_words_are_problem_numbers():
    values = {str(v) for v, _, _ in problem_numbers("She has twice as many, a dozen eggs and 80% of 1,200 apples.")}
    assert {"2", "12", "80", "4/5", "1200"} <= values
    found = [(str(v), a) for v, a, _ in problem_numbers("A fourth of them, a third of the rest.")]
    assert found == [("1/4", 2), ("4", 2), ("1/3", 20), ("3", 20)]  # a fraction word is also its denominator


def test_rounded_results_become_floor_steps():
    ops, _ = ops_for_trace("David has 17 tubes.", spans_of("David has 17*0.5=8 tubes of red paint"), [[]])
    assert [op["op"] for op in ops] == ["mul", "floor"] and ops[-1]["result"] == "8"


def test_tampered_provenance_fails_execution():
    ops, _ = ops_for_trace(NATALIA, spans_of("48/2 = 24"), [[]])
    ops[0]["operands"][0]["value"] = "50"  # the problem does not say 50 at those offsets
    with pytest.raises(ValueError, match="does not state 50"):
        execute(ops, NATALIA)


def test_statuses_and_no_executed_text(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}') = 1 and 2 + 2 = 4"
    batch = {
        "problem": [NATALIA, NATALIA, NATALIA, NATALIA, "x"],
        "answer": ["72", "70", "72", None, "4"],
        "spans": [spans_of("48/2 = 24.\n", "48+24 = 72.")] * 2
        + [spans_of("No numbers here.")]
        + [spans_of("48/2 = 24.")]
        + [spans_of(evil)],
        "span_regions": [[[], []]] * 2 + [[[]], [[]], [[]]],
    }
    out = make_ops(batch, verify_timeout=5)
    assert out["op_status"] == ["validated", "wrong_answer", "no_ops", "no_gold", "validated"]
    assert out["validated"] == [True, False, False, False, True]
    assert "gold is 70" in out["op_status_reason"][1]
    assert not marker.exists()


def test_io_labels_on_real_offsets_multibyte_text_and_a_region_ending_mid_word():
    from mycelium_datasets.defaults import DEFAULT_BACKBONE
    from mycelium_datasets.student_sets import NO_LABEL, io_labels, load_student_tokenizer

    text = "Zoë buys 3 crêpes for €12 each."
    tokenizer = load_student_tokenizer(DEFAULT_BACKBONE)  # the embedded backbone's WordPiece tokenizer
    encoded = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets = [tuple(o) for o in encoded["offset_mapping"]]
    pieces = [text[a:b] for a, b in offsets]
    assert pieces == ["", "Zoë", "buys", "3", "cr", "êp", "es", "for", "€", "12", "each", ".", ""]
    special = encoded["special_tokens_mask"]
    # "buys 3 crê": ends inside "êp" (a token of two characters, three bytes); "€12": a three-byte symbol and its
    # number, two tokens
    regions = [(text.index("buys"), text.index("pes")), (text.index("€"), text.index(" each"))]
    labels = io_labels(offsets, regions, special)
    assert [p for p, label in zip(pieces, labels) if label == 1] == ["buys", "3", "cr", "êp", "€", "12"]
    assert labels[0] == labels[-1] == NO_LABEL and labels.count(0) == 5
    # a region of only the space between "buys" and "3" touches both tokens and overlaps neither
    assert io_labels(offsets, [(text.index(" 3"), text.index("3 "))], special) == [NO_LABEL, *[0] * 11, NO_LABEL]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, teacher_path):
    out = tmp_path_factory.mktemp("ops-run")
    configs = split_options({"size": 12, "test_fraction": 0.0})
    for name in BUILDERS:
        BUILDERS[name](out, configs[name]).build()
    return out


def test_pipeline_to_student_sets(run_dir: Path):
    pairs = datasets.load_dataset(str(run_dir / "op_pairs"))["train"]
    validated = [r for r in pairs if r["validated"]]
    assert len(validated) >= 9  # reference CoTs of gsm_symbolic: nearly all execute to the gold answer
    io = datasets.load_dataset(str(run_dir / "io_tags"))["train"]
    assert sorted(io["id"]) == sorted(r["id"] for r in validated)
    for row in io:
        assert len(row["labels"]) == len(row["input_ids"]) == len(row["offsets"])
        assert set(row["labels"]) <= {-1, 0, 1} and 1 in row["labels"] and 0 in row["labels"]
        assert row["labels"][0] == row["labels"][-1] == -1  # [CLS] and [SEP]: no label
    classes = datasets.load_dataset(str(run_dir / "op_classes"))["train"]
    label_text = classes.features["label"].int2str
    problems = {r["id"]: r["problem"] for r in pairs}
    bindings = {r["id"]: r for r in datasets.load_dataset(str(run_dir / "bindings"))["train"]}
    for row in classes:
        problem_id, unit = row["id"].split("#unit")
        assert row["text"] in problems[problem_id]  # problem text, never CoT text
        binding = bindings[problem_id]
        # one row per unit, labelled with the unit's operations in the binding's layout order
        assert row["text"] == binding["units"][int(unit)]["text"]
        assert label_text(row["label"]).split("+") == [op["op"] for op in binding["ops"] if op["unit"] == int(unit)]
    assert len(classes) == sum(len(b["units"]) for b in bindings.values())
    card = (run_dir / "op_classes" / "README.md").read_text()
    assert "Rows in:" in card and "label" in card


def test_label_sets_are_class_labels_a_student_takes_its_id2label_from(run_dir: Path):
    """``io_tags.labels`` names O / OP; ``op_classes.label`` names the operation sequences its rows hold, the
    training split's most frequent first, the same label set in every split: the classifier's classes."""
    from mycelium_models.modeling_mycelium import MyceliumTaggerConfig
    from mycelium_models.train import classifier_labels

    io = datasets.load_dataset(str(run_dir / "io_tags"))
    feature = io["train"].features["labels"].feature
    assert isinstance(feature, datasets.ClassLabel) and feature.names == ["O", "OP"]
    assert dict(enumerate(feature.names)) == MyceliumTaggerConfig().id2label
    classes = datasets.load_dataset(str(run_dir / "op_classes"))
    label = classes["train"].features["label"]
    assert isinstance(label, datasets.ClassLabel)
    assert all(d.features == classes["train"].features for d in classes.values())
    texts = {split: label.int2str(d["label"]) for split, d in classes.items()}
    assert sorted(label.names) == sorted({t for split in texts.values() for t in split})  # every label, only those
    counts = collections.Counter(texts["train"])
    assert [counts[name] for name in label.names] == sorted(counts.values(), reverse=True)  # most frequent first
    assert classifier_labels(classes) == label.names  # the classifier's id2label comes from the data


def test_a_round_adds_labels_the_run_never_held_keeping_every_id(run_dir: Path):
    """The self-improving loop's rows may hold an operation sequence the run's ``op_classes`` lacks: the label set
    grows at its end, every existing id keeps its meaning, and the rows join the split."""
    from mycelium_datasets.student_sets import with_label_names

    classes = datasets.load_dataset(str(run_dir / "op_classes"))
    names = classes["train"].features["label"].names
    before = {split: d.features["label"].int2str(d["label"]) for split, d in classes.items()}
    rows = [{"id": "new#unit0", "text": "twice as many", "label": "floor+floor+floor"}, {**classes["train"][0]}]
    rows[1]["label"] = names[rows[1]["label"]]
    widened = with_label_names(classes, rows)
    label = widened["train"].features["label"]
    assert label.names == [*names, "floor+floor+floor"]
    assert {split: label.int2str(d["label"]) for split, d in widened.items()} == before
    added = datasets.Dataset.from_list(rows, features=widened["train"].features)
    joined = datasets.concatenate_datasets([widened["train"], added])
    assert label.int2str(joined["label"][-2:]) == ["floor+floor+floor", rows[1]["label"]]
    assert with_label_names(classes, rows[1:]) is classes  # nothing new: unchanged


def test_bindings_pointers_resolve_and_reproduce_op_pairs(run_dir: Path):
    from fractions import Fraction

    from mycelium_datasets.dag import execute
    from mycelium_datasets.numbers import quantities

    pairs = {r["id"]: r for r in datasets.load_dataset(str(run_dir / "op_pairs"))["train"]}
    bindings = datasets.load_dataset(str(run_dir / "bindings"))["train"]
    assert sorted(bindings["id"]) == sorted(i for i, r in pairs.items() if r["validated"])
    card = (run_dir / "bindings" / "README.md").read_text()
    assert "constant vocabulary" in card and "Rows in: 12" in card
    for row in bindings:
        found = quantities(row["problem"])
        assert [(q["char_start"], q["char_end"], Fraction(q["value"])) for q in row["quantities"]] == [
            (a, b, v) for v, a, b in found
        ]
        units = [(u["char_start"], u["char_end"]) for u in row["units"]]
        assert units == sorted(units) and all(b <= c for (_, b), (c, _) in zip(units, units[1:]))
        assert [op["unit"] for op in row["ops"]] == sorted(op["unit"] for op in row["ops"])  # layout order
        for k, op in enumerate(row["ops"]):
            assert 0 <= op["unit"] < len(units)
            for p in op["operands"]:
                if p["kind"] == "quantity":
                    assert 0 <= p["index"] < len(found) and found[p["index"]][0] == Fraction(p["value"])
                elif p["kind"] == "op":
                    assert 0 <= p["index"] < len(row["ops"]) and p["index"] != k
                    assert row["ops"][p["index"]]["result"] == p["value"]
                else:
                    assert p["kind"] == "constant" and p["index"] >= -1
        assert 0 <= row["answer_op"] < len(row["ops"])
        value, _ = execute(row["ops"], row["answer_op"], found, [])  # constants by value
        assert Fraction(pairs[row["id"]]["executed_answer"]) == value == Fraction(row["executed_answer"])


def test_bad_rows_flow_through(tmp_path, teacher_path):
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "id": "ok",
                "problem": "Tom has 3 apples and buys 4 more. How many?",
                "answer": "7",
                "solution": "Tom has 3 + 4 = 7 apples.\n#### 7",
            },
            {"id": "no-gold", "problem": "Tom has 3 apples.", "solution": "3 + 1 = 4"},
            {"id": "empty", "problem": "", "answer": "1"},
        ],
    )
    configs = split_options({"source": str(src), "test_fraction": 0.0})
    out = tmp_path / "run"
    for name in BUILDERS:
        BUILDERS[name](out, configs[name]).build()
    rows = {r["id"]: r for r in datasets.load_dataset(str(out / "op_pairs"))["train"]}
    assert rows["ok"]["op_status"] == "validated"
    assert rows["no-gold"]["op_status"] == "no_gold" and rows["empty"]["op_status"] == "no_spans"
    assert datasets.load_dataset(str(out / "io_tags"))["train"]["id"] == ["ok"]


def test_math_segments_and_statements():
    text = (
        r"It costs $\$15$, so $54\div 3\cdot\$1=\$18$. We get \begin{align*}"
        "\n"
        r"2\cdot 3 &= 6, \\"
        "\n"
        r"\frac{6}{2} &= 3 \\ &= \boxed{3}."
        "\n"
        r"\end{align*} [asy] for(i=1;i<=6;++i) [/asy] and \[x = 5 \Rightarrow 2x = 10.\]"
    )
    assert [c for c, _ in math_segments(text)][:2] == [r"\$15", r"54\div 3\cdot\$1=\$18"]
    statements = [(st.parts, st.name, st.boxed) for st in latex_statements(text)]
    assert statements == [
        ([r"54\div 3\cdot\$1", r"\$18"], None, False),
        ([r"2\cdot 3", "6"], None, False),  # ", " ends a statement
        ([r"\frac{6}{2}", "3", r"\boxed{3}."], None, True),  # "&= ..." on the next row continues the chain
        (["x", "5"], "x", False),
        (["2x", "10."], None, False),
    ]


MATH_PROBLEM = "If $\\frac{1}{2}(3x-9) = x + 37$, what is $x$?"


def test_latex_trace_with_an_unknown_and_the_boxed_answer():
    cot = (
        r"Multiply: $\frac{1}{2}(3x-9) = x+37$, so $x = \boxed{83}$. "
        r"Check: $\frac{1}{2}(3\cdot 83-9) = 120 = 83 + 37$."
    )
    ops, errors = ops_for_trace(MATH_PROBLEM, spans_of(cot), [[]])
    assert [op["op"] for op in ops] == ["solve"] and ops[0]["parse_tier"] == 2  # nothing after the boxed answer
    assert [o["value"] for o in ops[0]["operands"]] == ["1.5", "-4.5", "1", "37"]
    assert execute(ops, MATH_PROBLEM) == 83


def test_a_binomial_coefficient_written_alone_is_an_operation():
    # MATH-500 dev 207: no sign of arithmetic but \choose, which op_pairs 2.4.0 did not count as one
    problem = (
        "Mikka wants to order a pizza with two different toppings. He has 8 different toppings to choose from. How "
        "many different pizzas could he order?"
    )
    cot = (
        "There are 8 choices of toppings, and we need to choose 2 distinct toppings. This is represented by the "
        "number of 2-element subsets of an 8 -element set. We use the binomial coefficient "
        r"${8 \choose 2} = \boxed{28}$ to compute this."
    )
    row = validate_trace(problem, "28", spans_of(cot), [[]])
    assert row["validated"] and [(op["op"], [o["source"] for o in op["operands"]]) for op in row["ops"]] == [
        ("binom", ["problem", "problem"])
    ]


def test_latex_assignments_substitute_later():
    cot = r"We have $r = \sqrt{0^2 + 3^2} = 3$. Then $A = 2r^2 + r = \boxed{21}$."
    ops, _ = ops_for_trace("A point is $(0,3)$.", spans_of(*cot.split(". ")), [[], []])
    assert [op["op"] for op in ops] == ["pow", "pow", "add", "sqrt", "pow", "mul", "add"]
    assert execute(ops, "A point is $(0,3)$.") == 21 and all(op["parse_tier"] == 1 for op in ops)


def test_latex_bombs_are_recorded_errors(tmp_path):
    cot = "$10^{10^{10}} = 1$, $" + "{" * 2000 + "1" + "}" * 2000 + "+1 = 2$, $\\frac{1}{0} = 3$, $x^{x^{x}} = 4$."
    ops, errors = ops_for_trace("x", spans_of(cot), [[]])
    assert ops == [] and errors >= 3


# Real MATH solutions (MATH-500, MIT licence), as the reference CoTs the op_pairs stage reads.
MATH_DISTANCE = (
    "What is the distance, in units, between the points $(2, -6)$ and $(-4, 3)$? "
    "Express your answer in simplest radical form."
)
MATH_DISTANCE_COT = (
    "We use the distance formula:  \\begin{align*}\n\\sqrt{(2 - (-4))^2 + ((-6) - 3)^2} &= \\sqrt{6^2 + (-9)^2}\\\\\n"
    "& = \\sqrt{36 + 81}\\\\\n& = \\sqrt{117} = \\boxed{3\\sqrt{13}}.\n\\end{align*}"
)
MATH_DOGS = "Denali is responsible for $16$ dogs and Nate is responsible for $12$ dogs. Find $x$ if $x\\neq0$."
MATH_DOGS_COT = (
    "we have \\[\\frac{16+4x}{12}=\\frac{16+x}{12-x}.\\]Clearing denominators, \\begin{align*}\n"
    "(16+4x)(12-x)&=(16+x)(12)\\quad \\Rightarrow\\\\\n192-16x+48x-4x^2&=192+12x\\quad \\Rightarrow\\\\\n"
    "32x-4x^2&=12x\\quad \\Rightarrow\\\\\n0&=4x^2-20x\\quad \\Rightarrow\\\\\n0&=4x(x-5).\n\\end{align*}"
    "Because $x$ cannot be $0$, $x=\\boxed{5}$."
)


def test_tier1_irrational_gold_on_a_real_math_solution():
    row = validate_trace(MATH_DISTANCE, "3\\sqrt{13}", spans_of(MATH_DISTANCE_COT), [[]])
    assert row["validated"] and row["executed_answer"] == "3 \\sqrt{13}"
    assert [op["op"] for op in row["ops"]][-1] == "sqrt" and all(op["parse_tier"] == 1 for op in row["ops"])
    assert execute(row["ops"], MATH_DISTANCE) == parse_value("3\\sqrt{13}")


def test_tier2_polynomial_takes_the_root_the_cot_uses():
    row = validate_trace(MATH_DOGS, "5", spans_of(MATH_DOGS_COT), [[]])
    assert row["validated"] and row["executed_answer"] == "5"
    (op,) = [op for op in row["ops"] if op["op"] == "poly_root"][:1]
    assert op["parse_tier"] == 2 and [o["value"] for o in op["operands"]] == ["-4", "20", "0", "1"]  # root 1 of [0, 5]
    assert execute(row["ops"], MATH_DOGS) == 5


def test_symbolic_bombs_in_a_cot_are_recorded_errors():
    cot = (
        "$(\\sqrt{2}+\\sqrt{3}+\\sqrt{5}+\\sqrt{7}+\\sqrt{11}+\\sqrt{13}+\\sqrt{17}+\\sqrt{19})^{12} = 1$, "
        "$\\pi^{1000} = 2$, $x^5 - x - 1 = 0$, $x^2 + 1 = 0$."
    )
    started = time.monotonic()
    ops, errors = ops_for_trace("x", spans_of(cot), [[]])
    assert ops == [] and errors >= 2 and time.monotonic() - started < 5


# -- tier 3: a step no parser reads, read with an operation classifier ---------------------------------------------

# GSM8K train (gsm8k_train-002041): the reference writes every step in words ("14 plus 8 equals 22"), which tier 1
# reads since op_pairs 2.5.0; PIZZA_WORDS are the same steps as a teacher may word them with no operation word, which
# no parser reads
PIZZA = (
    "Phil and Andre decide to order some pizza. They get a small cheese and a large pepperoni. The small pizza has 8 "
    "slices, The large has 14 slices. They have both eaten 9 slices already. How many pieces are left per person?"
)
PIZZA_COT = [
    "There are 22 pieces of pizza because 14 plus 8 equals 22.\n",
    "They have eaten 18 pieces of pizza because 9 plus 9 equals 18.\n",
    "There are 4 pieces of pizza left because 22 minus 18 equals 4.\n",
    "There are 2 pieces per person because 4 divided by 2 equals 2.\n",
    "The answer is 2.",
]
PIZZA_WORDS = [
    "There are 22 pieces of pizza because 14 and 8 make 22.\n",
    "They have eaten 18 pieces of pizza because 9 and 9 make 18.\n",
    "There are 4 pieces of pizza left because 22 take away 18 leaves 4.\n",
    "There are 2 pieces per person because 4 pieces split between 2 people gives 2.\n",
    "The answer is 2.",
]


class Ranking:
    """An operation classifier's answer, fixed: the same ranked sequences for every text (what tier 3 asks of a
    classifier is only this ranking; the real students' ranking is tested in test_students.py)."""

    def __init__(self, *sequences):
        self.sequences, self.asked = [tuple(s) for s in sequences], []

    def rank_operations(self, texts, k=3):
        self.asked.append(list(texts))
        return [list(self.sequences) for _ in texts]


def test_tier1_reads_arithmetic_written_in_words():
    spans = spans_of(*PIZZA_COT)
    row = validate_trace(PIZZA, "2", spans, [[] for _ in spans])
    assert row["validated"] and {op["parse_tier"] for op in row["ops"]} == {1}
    assert [(op["op"], [o["value"] for o in op["operands"]], op["result"]) for op in row["ops"]] == [
        ("add", ["14", "8"], "22"),
        ("add", ["9", "9"], "18"),
        ("sub", ["22", "18"], "4"),
        ("div", ["4", "2"], "2"),
    ]


def test_tier3_reads_steps_in_words_and_keeps_them_only_when_the_dag_reaches_the_gold():
    spans = spans_of(*PIZZA_WORDS)
    plain = validate_trace(PIZZA, "2", spans, [[] for _ in spans])
    assert plain["op_status"] == "no_ops" and plain["ops"] == []
    ranking = Ranking(("mul",))  # the classifier's first guess is wrong for every step; the written results decide
    row = validate_trace(PIZZA, "2", spans, [[] for _ in spans], fallback=ranking)
    assert row["validated"] and row["op_status"] == "validated"
    assert [(op["op"], [o["value"] for o in op["operands"]], op["result"]) for op in row["ops"]] == [
        ("add", ["14", "8"], "22"),
        ("add", ["9", "9"], "18"),
        ("sub", ["22", "18"], "4"),
        ("div", ["4", "2"], "2"),
    ]
    assert {op["parse_tier"] for op in row["ops"]} == {3}
    assert [o["source"] for o in row["ops"][2]["operands"]] == ["op", "op"]  # 22 and 18 are earlier results
    assert ranking.asked == [[t for t in PIZZA_WORDS[:4]]]  # one call per problem; "The answer is 2." has one number
    assert execute(row["ops"], PIZZA) == 2  # the DAG runs from provenance alone
    wrong_gold = validate_trace(PIZZA, "3", spans, [[] for _ in spans], fallback=ranking)
    assert wrong_gold == plain  # a tier-3 reading that misses the gold is not kept: the row is tiers 1-2's


def test_tier3_prefers_the_classifiers_operation_and_never_reads_against_the_steps_own_words():
    problem = "Tom has 2 red and 2 blue balls. How many balls does he have?"
    spans = spans_of("He has 4 balls because 2 and 2 make 4.\n", "The answer is 4.")
    as_mul = validate_trace(problem, "4", spans, [[]] * 2, fallback=Ranking(("mul",)))
    as_add = validate_trace(problem, "4", spans, [[]] * 2, fallback=Ranking(("add",)))
    assert [op["op"] for op in as_mul["ops"]] == ["mul"] and [op["op"] for op in as_add["ops"]] == ["add"]
    # the step names its operation: "4 * 2" is never read as 4 + 2, whatever the classifier says
    spans = spans_of("Spiders have twice that, so we multiply 4*2 to find 8 legs.\n", "The answer is 8.")
    row = validate_trace("Humans have 4 legs in two pairs.", "8", spans, [[]] * 2, fallback=Ranking(("add",)))
    assert [(op["op"], [o["value"] for o in op["operands"]]) for op in row["ops"]] == [("mul", ["4", "2"])]
    assert named_ops("12cm*(3/4) = 9cm") == {"mul", "div"} and named_ops("8 minus 6 equals 2") == {"sub"}
    assert named_ops("9 t-shirts for 3 days") == set()  # a hyphen inside a word is not a minus


def test_tier3_never_takes_the_result_a_step_restates_nor_an_identity():
    problem = "26 desserts are shared by 13 students. How many does each get?"
    # "gets 2 ... gives 2": the first 2 restates the result; 26 * 2 / 26 or 2 * 1 would reach 2 by another route
    spans = spans_of("Each student gets 2 desserts because 26 desserts split 13 ways gives 2.\n", "The answer is 2.")
    row = validate_trace(problem, "2", spans, [[]] * 2, fallback=Ranking(("mul", "div"), ("mul",)))
    assert [(op["op"], [o["value"] for o in op["operands"]]) for op in row["ops"]] == [("div", ["26", "13"])]
    assert [numbers for numbers in step_numbers(PIZZA_WORDS[0])] == [[22], [14], [8], [22]]
    spans = spans_of("So 1 lot of 100 gives 100 dollars.\n", "The answer is 100.")
    row = validate_trace("He has 100 dollars.", "100", spans, [[]] * 2, fallback=Ranking(("mul",)))
    assert row["op_status"] == "no_ops"  # 1 * 100 hands back its input: no reading, and nothing to validate


def test_tier3_never_reads_a_step_that_writes_algebra():
    # GSM8K train (gsm8k_train-002899): "1/2*X + 14 ... 1/3*X + 16" holds 2 + 14 = 16 by coincidence; tier 2's step
    problem = (
        "Mark went to a store where he spent one-half of his money, and then spent $14 more. He then went to another "
        "store where he spent one-third of his starting money, and then spent $16 more. If he then had no money left, "
        "how much did he have when he entered the first store?"
    )
    spans = spans_of(
        "Let X be the money Mark had. Mark spent 1/2*X + 14 in the first store and 1/3*X + 16 in the second store.\n",
        "Mark has X - 1/2*X - 14 - 1/3*X - 16 = $0 left.\n",
        "Combining like terms, we get 1/6*X - 30 = $0.\n",
        "Adding 30 to both sides and multiplying both sides by 6, we find that Mark had X = $180 when he entered the "
        "first store.\n",
    )
    ranking = Ranking(("add",))
    row = validate_trace(problem, "180", spans, [[] for _ in spans], fallback=ranking)
    assert row["validated"] and [(op["op"], [o["value"] for o in op["operands"]]) for op in row["ops"]] == [
        ("mul", ["30", "6"])  # the last step names its operations: adding 30, multiplying by 6
    ]
    assert ranking.asked == [[spans[3]["text"]]]  # the steps that write algebra are not even asked about


def test_tier3_never_reads_a_latex_trace():
    # MATH-500 dev (math500-226): counting, not arithmetic; 1 + 2 would "reach" the boxed 3 by coincidence
    problem = (
        "How many ways are there to put 5 balls in 2 boxes if the balls are not distinguishable and neither are the "
        "boxes?"
    )
    solution = (
        "Since both the balls and boxes are indistinguishable, we can arrange them with 5 in one and 0 in the other, "
        "4 in one and 1 in the other, or 3 in one and 2 in the other, for a total of $\\boxed{3}$ different "
        "arrangements."
    )
    ranking = Ranking(("add",))
    row = validate_trace(problem, "3", spans_of(solution), [[]], fallback=ranking)
    assert not row["validated"] and ranking.asked == []  # the classifier is not even asked


def test_units_written_against_numbers():
    # gsm8k_train-003275: "g" is written only against numbers, twice or more: a unit
    trace = "Nathalie ate 1/8 * 400g = 50g of cake.\nPierre eats 2 * 50g = 100g of cake."
    assert glued_units(trace) == {"g"}
    assert plain_equations(trace, glued_units(trace)) == [("1/8 * 400", "50", 13), ("2 * 50", "100", 49)]
    assert plain_equations(trace) == []  # without: "400g" is no number
    # a letter also written alone is an unknown; once, a coefficient; x is a times sign
    assert glued_units("Let b be Bill's years. 2b - 5 = 3b - 15") == set()
    assert glued_units("so 3 = 1+ 2F") == set() and glued_units("2x3 = 6 and 3x2 = 6") == set()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Substituting, we get 2x+140=198", [("2x+140", "198")]),
        ("the equation becomes 160x = 24000.", [("160x", "24000")]),
        ("we get 2*x = 50 - 10 = 40", [("2*x", "50 - 10")]),
        ("Total:x+x+1+x+2=96", [("x+x+1+x+2", "96")]),
        ("leaving x=29. This", []),  # an assignment, not an equation
        ("y + x = 198", []),  # two unknowns
        ("So it makes 200 m + 200 m = 400 m", []),  # a unit, not an unknown
        ("200m + 200m = 400m", []),
        ("4*3 +6*Y =42", []),  # the end of a longer expression: left whole to the parser
        # the letter on both sides or on the right (op_pairs 2.5.0), real GSM8K train steps
        ("Since these two equations equal the same thing, we can write: 7 + x = 2 * x.", [("7 + x", "2 * x")]),
        ("we get 2b - 5 = 3(b - 5)", [("2b - 5", "3(b - 5)")]),  # 2.4.0 read "2b - 5 = 3"
        ("2*x+5=20+x/2", [("2*x+5", "20+x/2")]),  # 2.4.0 read "2*x+5 = 20"
        ("Equating both: 2p/5 = (p+$600)/4", [("2p/5", "(p+$600)/4")]),
        ("gives: 3p = $3000", [("3p", "$3000")]),
        ("If the total was 3, then we have 3 = 1+ F", [("3", "1+ F")]),
        ("Adding x to both sides gives 38 – x + x = 32 +x", [("38 - x + x", "32 +x")]),
        ("Yuan is seven years older than David, 7 + x = Y years.", []),  # two unknowns
        ("we get 7 = x, so David is 7 years old", []),  # an assignment written the other way round
        ("Lucy had 500 – 240 = 260g of flour left.", []),  # a result and its unit
        ("200 m + 2 m = 202 m", []),
    ],
)
def test_plain_algebra(text, expected):
    assert [(left, right) for left, right, _ in plain_algebra(text)] == expected


def test_tier2_solves_an_equation_with_its_letter_on_both_sides_in_a_plain_trace():
    # GSM8K train, problem 4984: before op_pairs 2.5.0 "2b - 5 = 3(b - 5)" was read as "2b - 5 = 3" (b = 4)
    problem = (
        "Bill and Joan both work for a library. 5 years ago, Joan had 3 times as much experience as Bill. Now she has "
        "twice as much experience as Bill. How many years of experience does Bill have now?"
    )
    spans = spans_of(
        "Let b be Bill's years of experience and j be Joan's years of experience. We know that j - 5 = 3(b - 5) and "
        "j = 2b.\n",
        "Substituting the second equation into the first equation, we get 2b - 5 = 3(b - 5)\n",
        "Multiplying through the parentheses, we get 2b - 5 = 3b - 15\n",
        "Adding 15 to both sides, we get 2b + 10 = 3b\n",
        "Subtracting 2b from both sides, we get 10 = b\n",
    )
    row = validate_trace(problem, "10", spans, [[] for _ in spans])
    assert row["validated"]
    assert [(op["op"], [o["value"] for o in op["operands"]], op["result"], op["parse_tier"]) for op in row["ops"]] == [
        ("solve", ["2", "-5", "3", "-15"], "10", 2),
        ("solve", ["2", "-5", "3", "-15"], "10", 2),
        ("solve", ["2", "10", "3", "0"], "10", 2),
    ]
    # 2 is "twice" and 3 the problem's "3 times"; -5 and -15 are the CoT's own coefficients
    assert [o["source"] for o in row["ops"][0]["operands"]] == ["problem", "constant", "problem", "constant"]


def test_a_system_of_two_linear_equations_is_read_when_the_trace_does_not_validate_without_it():
    # MATH-500 dev 187, its CoT cut after the system (as a teacher may write it: "solving, ..."): no op without it
    problem = (
        "Hillary has eleven coins, all dimes and nickels. In total, the coins are worth 75 cents. How many nickels "
        "does she have?"
    )
    spans = spans_of(
        "Let the number of dimes Hillary has be $d$ and the number of nickels she has be $n$. We have the two "
        "equations \\begin{align*}\nd+n&=11\\\\\n10d+5n&=75\n\\end{align*} ",
        "Solving them, Hillary has $\\boxed{7}$ nickels.",
    )
    assert ops_for_trace(problem, spans, [[], []])[0] == []
    row = validate_trace(problem, "7", spans, [[], []])
    assert row["validated"] and row["executed_answer"] == "7"
    assert [(op["op"], [o["value"] for o in op["operands"]], op["result"]) for op in row["ops"]] == [
        ("solve2", ["1", "1", "11", "10", "5", "75"], "4"),  # d
        ("solve2", ["1", "1", "11", "5", "10", "75"], "7"),  # n: each equation's coefficients swapped
    ]
    assert all(op["parse_tier"] == 2 for op in row["ops"])
    # the whole CoT solves the system itself, by substitution: its own steps, not the system, make the DAG
    full = spans_of(
        spans[0]["text"],
        "We divide both sides by 5 to get $2d+n=15$. From the first given equation, we have $d=11-n$. Substituting "
        "this into the simplified second given equation to eliminate $d$, we get $2(11-n)+n=15\\Rightarrow n=7$. "
        "Thus, Hillary has $\\boxed{7}$ nickels.",
    )
    row = validate_trace(problem, "7", full, [[], []])
    assert row["validated"] and [op["op"] for op in row["ops"]] == ["solve"]


def test_a_system_in_a_plain_trace_answers_with_the_unknown_the_cot_goes_on_to_write():
    problem = "Sam and John share 198 feet of fence. John gets 140 feet more than Sam. How much fence does Sam get?"
    spans = spans_of(
        "Let x be the amount of fence Sam gets and y be the amount John gets. We know that y = x + 140, and y + x = "
        "198.\n",
        "So Sam has 29 feet of fence.\n",
    )
    row = validate_trace(problem, "29", spans, [[], []])
    assert row["validated"]
    assert [(op["op"], op["result"], op["written_result"]) for op in row["ops"]] == [
        ("solve2", "169", "y"),
        ("solve2", "29", "x"),  # written later: last, the answer
    ]
    assert [o["source"] for o in row["ops"][1]["operands"]] == ["constant"] * 2 + ["problem"] + ["constant"] * 2 + [
        "problem"
    ]


def test_tier2_solves_an_equation_in_one_letter_in_a_plain_trace():
    # gsm_symbolic (seed 0, problem 31): no LaTeX, so before op_pairs 2.4.0 no equation here was read
    problem = "Sam and John share 198 feet of fence. John gets 140 feet more than Sam. How much fence does Sam get?"
    spans = spans_of(
        "Let x be the amount of fence Sam gets and y be the amount John gets. We know that y = x + 140, and y + x = "
        "198.\n",
        "Substituting the first equation into the second equation, we get 2x+140=198\n",
        "Subtracting the 140 from both sides, we get 2x=58\n",
        "We divide each side by two, leaving x=29. This means Sam has 29 feet of fence.\n",
    )
    row = validate_trace(problem, "29", spans, [[] for _ in spans])
    assert row["validated"]
    assert [(op["op"], [o["value"] for o in op["operands"]], op["result"], op["parse_tier"]) for op in row["ops"]] == [
        ("solve", ["2", "140", "0", "198"], "29", 2),
        ("solve", ["2", "0", "0", "58"], "29", 2),
    ]
    assert [o["source"] for o in row["ops"][0]["operands"]][1:] == ["problem", "constant", "problem"]
