"""Teacher generation's threads: the free cores, at least one; MYCELIUM_GENERATION_THREADS overrides; put back."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mycelium_datasets.teacher import build_prompt, generate, load_teacher
from mycelium_datasets.threads import ENV, busy_fraction, choose_num_threads, generation_threads, torch_threads


def test_a_busy_machine_gets_one_thread_and_an_idle_one_every_core():
    assert choose_num_threads(2, busy_cores=2.0) == 1  # a training job on both cores
    assert choose_num_threads(2, busy_cores=0.1) == 2
    assert choose_num_threads(16, busy_cores=4.2) == 12


@given(st.integers(1, 256), st.floats(0, 1000))
def test_threads_are_between_one_and_the_cores(available, busy):
    assert 1 <= choose_num_threads(available, busy) <= available


def test_busy_fraction_is_a_share_of_cpu_time():
    busy = busy_fraction(0.05)
    assert busy is None or 0.0 <= busy <= 1.0


def test_the_environment_decides_first(monkeypatch):
    monkeypatch.setenv(ENV, "3")
    assert generation_threads() == 3
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert generation_threads() == torch.get_num_threads()
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValueError, match=ENV):
            generation_threads()


def test_torch_threads_puts_the_count_back_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_generation_runs_at_the_chosen_count_and_leaves_the_process_as_it_was(monkeypatch, teacher_path):
    model, tokenizer = load_teacher(teacher_path)
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(ENV, str(before + 1))
        generate(model, tokenizer, [build_prompt(tokenizer, "What is 1 + 1?", None)], 3)
        assert seen and set(seen) == {before + 1}
        seen.clear()
        generate(model, tokenizer, [build_prompt(tokenizer, "What is 1 + 1?", None)], 3, num_threads=1)
        assert set(seen) == {1}
        monkeypatch.setenv(ENV, "many")
        with pytest.raises(ValueError, match=ENV):
            generate(model, tokenizer, ["What is 1 + 1?"], 3)
    finally:
        hook.remove()
    assert torch.get_num_threads() == before
