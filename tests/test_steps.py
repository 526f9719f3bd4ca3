"""The step decoder's programs (mycelium_models.steps) and the decoder itself (MyceliumStepDecoder): bindings as
chains of binary steps, the tensors, training on a real batch, and the beam search with execution."""

from __future__ import annotations

import dataclasses
import time
from fractions import Fraction

import pytest
import torch

from mycelium_datasets.dag import execute
from mycelium_datasets.numbers import quantities
from mycelium_models.modeling_mycelium import (
    _TOKEN_FIELDS,
    NEG,
    POINTER_CODE,
    STEP_OPS,
    MyceliumStepDecoder,
    MyceliumStepDecoderConfig,
)
from mycelium_models.steps import (
    CONSTANT,
    QUANTITY,
    RESULT,
    StepCollator,
    StepError,
    encode,
    node_values,
    program_steps,
    quantity_regions,
    rank,
    search,
)

ADD, SUB, MUL, DIV = (STEP_OPS.index(op) for op in ("add", "sub", "mul", "div"))


def q(i):
    return {"kind": "quantity", "index": i}


def r(i):
    return {"kind": "op", "index": i}


def c(i):
    return {"kind": "constant", "index": i}


def run_program(steps, values):
    """Execute a program over node values (quantities then constants, by code)."""
    results = []

    def value(code):
        kind, index = divmod(code, POINTER_CODE)
        return values[(kind, index)] if kind < 2 else results[index]

    for left, right, op in steps:
        a, b = value(left), value(right)
        results.append({ADD: a + b, SUB: a - b, MUL: a * b, DIV: a / b}[op])
    return results[-1]


def test_an_n_ary_operation_is_a_left_to_right_chain_and_results_come_before_their_users():
    # layout order: op0 = sub(op1, q3) is the answer; op1 = add(q0, q1, q2) comes later in the layout
    ops = [{"op": "sub", "operands": [r(1), q(3)]}, {"op": "add", "operands": [q(0), q(1), q(2)]}]
    steps = program_steps(ops, 0)
    assert steps == [
        (QUANTITY + 0, QUANTITY + 1, ADD),
        (RESULT + 0, QUANTITY + 2, ADD),
        (RESULT + 1, QUANTITY + 3, SUB),
    ]
    values = {(0, 0): Fraction(1), (0, 1): Fraction(2), (0, 2): Fraction(3), (0, 3): Fraction(10)}
    assert run_program(steps, values) == (1 + 2 + 3) - 10


def test_a_shared_result_is_computed_once_and_unused_operations_are_left_out():
    ops = [
        {"op": "mul", "operands": [q(0), c(0)]},  # used twice
        {"op": "add", "operands": [r(0), r(0)]},  # the same node on both sides: x + x is a step
        {"op": "div", "operands": [q(1), q(2)]},  # not on the answer's path
        {"op": "sub", "operands": [r(0), q(1)]},
        {"op": "add", "operands": [r(0), r(3)]},
        {"op": "sub", "operands": [r(0), r(0)]},  # x - x is always 0: not a step
    ]
    assert program_steps(ops, 4) == [
        (QUANTITY + 0, CONSTANT + 0, MUL),
        (RESULT + 0, QUANTITY + 1, SUB),
        (RESULT + 0, RESULT + 1, ADD),
    ]
    assert program_steps(ops, 1) == [(QUANTITY + 0, CONSTANT + 0, MUL), (RESULT + 0, RESULT + 0, ADD)]
    with pytest.raises(StepError, match="same operand on both sides of sub"):
        program_steps(ops, 5)


@pytest.mark.parametrize(
    ("ops", "answer", "reason"),
    [
        ([{"op": "floor", "operands": [q(0)]}], 0, "not a step operation"),
        ([{"op": "add", "operands": [q(0), {"kind": "constant", "index": -1}]}], 0, "outside the vocabulary"),
        ([{"op": "add", "operands": [q(0), r(1)]}, {"op": "add", "operands": [r(0), q(1)]}], 0, "its own result"),
        ([{"op": "add", "operands": [q(0), r(5)]}], 0, "does not exist"),
        ([{"op": "add", "operands": [q(0)]}], 0, "1 operand"),
        ([{"op": "add", "operands": [q(0), q(1)]}], 3, "no answer"),
    ],
)
def test_what_a_program_cannot_write_is_an_error_naming_why(ops, answer, reason):
    with pytest.raises(StepError, match=reason):
        program_steps(ops, answer)


def test_real_bindings_execute_to_the_same_answer_as_their_programs(tmp_path):
    """On real validated problems: the program of a binding executes to the binding's own answer."""
    from mycelium_datasets.bindings import bind
    from mycelium_datasets.op_graph import validate_trace

    problem = "Tom has 10 apples. He buys 3 bags of 4 apples each and eats 5. How many apples does he have?"
    spans = [{"text": t, "char_start": 0, "char_end": len(t)} for t in ("3 * 4 = 12", "10 + 12 = 22", "22 - 5 = 17")]
    cot = "\n".join(s["text"] for s in spans)
    offset = 0
    for s in spans:
        s["char_start"] = cot.index(s["text"], offset)
        s["char_end"] = offset = s["char_start"] + len(s["text"])
    row = validate_trace(problem, "17", spans, [[] for _ in spans])
    assert row["validated"]
    for op in row["ops"]:  # the whole problem as each operation's region
        op["region"] = {"char_start": 0, "char_end": len(problem), "text": problem}
    binding = bind(problem, row["ops"], [])
    found = quantities(problem)
    steps = program_steps(binding["ops"], binding["answer_op"])
    values = {(0, k): v for k, (v, _, _) in enumerate(found)}
    assert len(steps) == 3
    assert run_program(steps, values) == execute(binding["ops"], binding["answer_op"], found, [])[0] == 17


def test_quantities_are_shown_inside_or_outside_the_units_or_unknown():
    spans = [(0, 2), (10, 12), (20, 22)]
    assert quantity_regions(spans, None) == [0, 0, 0]
    assert quantity_regions(spans, [(8, 14)]) == [1, 2, 1]
    assert quantity_regions(spans, []) == [1, 1, 1]


@pytest.fixture(scope="module")
def tiny_decoder():
    from transformers import AutoTokenizer, BertConfig

    from mycelium_datasets.defaults import resolve_backbone

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone())
    backbone = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ).to_dict()
    config = MyceliumStepDecoderConfig(backbone_config=backbone, constants=["2", "100"], state_size=16, max_steps=4)
    return MyceliumStepDecoder(config).eval(), tokenizer


PROBLEM = "Tom has 3 apples and buys 4 more. Then he buys 5 bags of 2 pears. How many pieces of fruit does he have?"


def _features(tokenizer, problem, steps=None, units=None):
    return encode(tokenizer, problem, quantities(problem), units, 256, steps, 64)


def test_teacher_forced_training_lowers_the_loss_on_a_real_batch(tiny_decoder):
    model, tokenizer = tiny_decoder
    steps = [(QUANTITY + 0, QUANTITY + 1, ADD), (QUANTITY + 2, QUANTITY + 3, MUL), (RESULT + 0, RESULT + 1, ADD)]
    other = "Sara had 20 dollars. She spent 8 dollars. How much is left?"
    batch = StepCollator(tokenizer.pad_token_id)(
        [_features(tokenizer, PROBLEM, steps), _features(tokenizer, other, [(QUANTITY + 0, QUANTITY + 1, SUB)])]
    )
    assert batch["labels"].shape == (2, 4, 3)  # three steps and STOP; the shorter program padded
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        out = model(**batch)
        losses.append(out.loss.item())
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    assert losses[-1] < losses[0] / 4, losses[::10]
    hits = model(**batch).step_hits
    assert hits.shape == (2, model.config.max_steps + 1)
    assert hits[0, :4].tolist() == [1, 1, 1, 1] and hits[1, :2].tolist() == [1, 1] and (hits[1, 2:] == -1).all()
    # the fitted decoder's beam finds the program and its exact answer
    features = StepCollator(tokenizer.pad_token_id)([_features(tokenizer, PROBLEM)])
    values = [node_values(quantities(PROBLEM), model.config.constants, features["quantity_spans"].shape[1])]
    program = search(model, features, values, [PROBLEM], num_beams=4)[0]
    assert program.steps == steps and program.answer == 17


def test_the_token_attention_reads_keys_projected_once_as_multihead_attention_would():
    """The decoder's two attentions over the problem's tokens project them once per problem (``_token_memory``);
    reading them (``_attend``) is ``nn.MultiheadAttention`` itself, padding mask included, and one problem's
    memory serves any number of hypotheses as if it were copied to each."""
    from mycelium_models.modeling_mycelium import _attend, _token_memory

    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    tokens, query = torch.randn(3, 9, 32), torch.randn(3, 32)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 5:] = mask[2, 2:] = False
    expected = attention(query[:, None], tokens, tokens, key_padding_mask=~mask)[0][:, 0]
    got = _attend(attention, query, *_token_memory(attention, tokens), mask)
    assert torch.allclose(got, expected, atol=1e-5)
    keys, values = _token_memory(attention, tokens[1:2])
    shared = _attend(attention, query, keys, values, mask[1:2])
    copied = _attend(
        attention, query, keys.expand(3, -1, -1, -1), values.expand(3, -1, -1, -1), mask[1:2].expand(3, -1)
    )
    assert torch.allclose(shared, copied) and torch.allclose(shared[1], expected[1], atol=1e-5)


def test_a_beam_shares_its_problems_tokens_and_scores_only_nodes_that_exist(tiny_decoder):
    model, tokenizer = tiny_decoder
    model.eval()
    features = StepCollator(tokenizer.pad_token_id)(
        [_features(tokenizer, PROBLEM), _features(tokenizer, "Add 1 and 2.")]
    )
    with torch.no_grad():
        start = model.encode_problem(**features)
        one = start.select(torch.tensor([0]))
        beam = one.select(torch.tensor([0, 0, 0]))
        assert beam.state.shape[0] == 3 and beam.focus_keys.shape[0] == 1  # the tokens are not copied per hypothesis
        after = model.take(beam, 0, torch.tensor([0, 1, 0]), torch.tensor([1, 2, 3]), torch.tensor([ADD, MUL, SUB]))
        scores = model.action_scores(after, 1)
        n, n_ops = after.nodes.shape[1], len(model.config.op_names)
        pairs = scores[:, :-1].reshape(3, n, n, n_ops)
        first_result = n - model.config.max_steps
        assert (pairs[:, first_result + 1 :] <= NEG / 2).all() and (pairs[:, :, first_result + 1 :] <= NEG / 2).all()
        assert (pairs[:, first_result, 0] > NEG / 2).any()  # the first step's result is an operand now
        # the same hypotheses with the problem's tokens copied to each row score the same
        copied = dataclasses.replace(
            after,
            **{name: getattr(after, name).expand(3, *getattr(after, name).shape[1:]) for name in _TOKEN_FIELDS},
        )
        assert torch.allclose(model.action_scores(copied, 1), scores)


def test_a_program_of_exactly_max_steps_steps_trains_and_decodes(tiny_decoder):
    """The STOP after the last possible step has no result slot to fill (a 12-step GSM8K program once crashed
    training with an index past the nodes)."""
    model, tokenizer = tiny_decoder
    problem = "Ann has 1 cat, 2 dogs, 3 fish, 4 birds and 5 mice. How many pets?"
    steps = [(QUANTITY + 0, QUANTITY + 1, ADD)] + [(RESULT + k, QUANTITY + k + 2, ADD) for k in range(3)]
    assert len(steps) == model.config.max_steps
    batch = StepCollator(tokenizer.pad_token_id)([_features(tokenizer, problem, steps)])
    out = model(**batch)
    assert torch.isfinite(out.loss) and (out.step_hits[0] >= 0).all()  # every step and the final STOP are scored
    values = [node_values(quantities(problem), model.config.constants, batch["quantity_spans"].shape[1])]
    program = search(
        model, StepCollator(tokenizer.pad_token_id)([_features(tokenizer, problem)]), values, [problem], num_beams=4
    )[0]
    assert len(program.steps) <= model.config.max_steps


def test_the_beam_never_keeps_a_division_by_zero_and_takes_a_number_of_the_problem(tiny_decoder):
    model, tokenizer = tiny_decoder
    problem = "A tank holds 0 liters and 7 buckets. How many liters are in each bucket?"
    features = StepCollator(tokenizer.pad_token_id)([_features(tokenizer, problem)])
    values = [node_values(quantities(problem), model.config.constants, features["quantity_spans"].shape[1])]
    for beams in (1, 4):
        program = search(model, features, values, [problem], num_beams=beams, rules=())[0]
        if program.steps:
            assert all(value is not None for value in program.values)
            assert any(code < CONSTANT for step in program.steps for code in step[:2])


def test_complete_programs_are_ranked_per_step_with_whole_answers_and_every_number_read():
    config = MyceliumStepDecoderConfig(program_length_penalty=0.5, fraction_penalty=3.0, unused_penalty=0.5)
    one, two = [(0, 1, ADD)], [(0, 1, ADD), (2, 3, MUL)]
    mentions = [0, 1, 2, 2]  # four quantity nodes, three written numbers ("80%" reads as 80 and 0.8)
    # per step, not a sum: a two-step program at -1.2 a step beats a one-step one at -2.0 (the raw sum would not)
    assert rank(-2.4, two, Fraction(6), mentions, config) > rank(-2.0, one, Fraction(6), mentions, config) + 0.5
    # the two-step program reads every written number; the one-step one leaves the third unread
    assert rank(-2.0, one, Fraction(6), mentions, config) == pytest.approx(-2.0 - 0.5)
    assert rank(-2.0, [(0, 2, ADD)], Fraction(6), mentions, config) == pytest.approx(-2.0 - 0.5)
    assert rank(-2.0, [(0, 3, ADD), (4, 1, ADD)], Fraction(6), mentions, config) == pytest.approx(-2.0 / 2**0.5)
    # a fraction as the final answer costs the fraction penalty
    assert rank(-2.0, one, Fraction(7, 2), mentions, config) == pytest.approx(-2.0 - 0.5 - 3.0)
    # all three off: the raw log-probability, as before students 2.4.0
    plain = MyceliumStepDecoderConfig(program_length_penalty=0.0, fraction_penalty=0.0, unused_penalty=0.0)
    assert rank(-2.4, two, Fraction(7, 2), mentions, plain) == -2.4


def test_the_beam_returns_the_program_its_ranking_prefers(tiny_decoder):
    """Whatever the penalties, the program returned is the best-ranked complete one the beam met: turning the
    unused penalty up never returns a program that leaves more written numbers unread."""
    model, tokenizer = tiny_decoder
    features = StepCollator(tokenizer.pad_token_id)([_features(tokenizer, PROBLEM)])
    values = [node_values(quantities(PROBLEM), model.config.constants, features["quantity_spans"].shape[1])]
    n_q = len(quantities(PROBLEM))

    def unread(program):
        read = {code - QUANTITY for step in program.steps for code in step[:2] if code < CONSTANT}
        return n_q - len(read)

    found = []
    for penalty in (0.0, 50.0):
        model.config.unused_penalty = penalty
        program = search(model, features, values, [PROBLEM], num_beams=4)[0]
        assert program.rank == pytest.approx(
            rank(program.score, [(0, 0, 0)] * len(program.steps), program.answer, [], model.config)
            - penalty * unread(program)
        )
        found.append(unread(program))
    model.config.unused_penalty = MyceliumStepDecoderConfig().unused_penalty
    assert found[1] <= found[0]


@pytest.mark.parametrize("size", [2000, 100_000])
def test_a_problem_with_thousands_of_numbers_is_decoded_in_bounded_time(tiny_decoder, size):
    """Pairwise scoring grows with the square of the nodes: the decoder takes at most ``max_quantities`` of them
    and reads at most ``max_input_tokens`` tokens, so 2,000 numbers (or 300,000 characters) stay cheap."""
    model, tokenizer = tiny_decoder
    problem = " ".join(str(k % 97 + 1) for k in range(size)) + " How many?"
    started = time.time()
    features = StepCollator(tokenizer.pad_token_id)([_features(tokenizer, problem)])
    values = [node_values(quantities(problem), model.config.constants, features["quantity_spans"].shape[1])]
    program = search(model, features, values, [problem], num_beams=8)[0]
    assert time.time() - started < 60
    assert all(code % POINTER_CODE < 64 for step in program.steps for code in step[:2] if code < CONSTANT)


def test_the_constant_vocabulary_keeps_what_enough_programs_use_and_points_by_value():
    from mycelium_models.steps import in_vocabulary, step_constants

    def op(*values):
        return {"op": "mul", "operands": [{"kind": "constant", "index": 7, "value": v} for v in values]}

    programs = [[op("100", "60")], [op("100")], [op("100", "3.5")], [op("60")]]
    assert step_constants(programs, 2) == ["100", "60"]  # most used first; 3.5 is used once
    assert step_constants(programs, 1) == ["100", "60", "3.5"]
    remapped = in_vocabulary(programs[2], ["100", "60"])  # the artifact's index 7 means nothing to the decoder
    assert [o["index"] for o in remapped[0]["operands"]] == [0, -1]
    assert programs[2][0]["operands"][0]["index"] == 7  # the input is not changed


def test_student_features_are_never_read_from_a_stale_cache(tmp_path, monkeypatch):
    """datasets keys its map cache on a module-level function's name, not its code: a student set loaded from disk
    (it has cache files) and mapped again after an edit to the encoding must give the new features."""
    import datasets

    from mycelium_models.train import features

    (tmp_path / "probe_encoding.py").write_text(
        "SCALE = 1\n\ndef encode(batch):\n    return {'y': [x * SCALE for x in batch['x']]}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import probe_encoding

    datasets.Dataset.from_dict({"x": [1, 2, 3]}).save_to_disk(tmp_path / "set")
    data = datasets.load_from_disk(tmp_path / "set")
    assert data.cache_files  # as a student set read from a run folder
    assert features(data, probe_encoding.encode)["y"] == [1, 2, 3]
    monkeypatch.setattr(probe_encoding, "SCALE", 10)  # the encoding changed; the function's name did not
    assert features(data, probe_encoding.encode)["y"] == [10, 20, 30]
    stale = data.map(probe_encoding.encode, batched=True, remove_columns=["x"])  # what the recipes did before
    monkeypatch.setattr(probe_encoding, "SCALE", 100)
    assert data.map(probe_encoding.encode, batched=True, remove_columns=["x"])["y"] == stale["y"]  # the trap
