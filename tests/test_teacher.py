"""The teacher's generation is transformers' own greedy ``generate``: the same tokens, one prompt or a batch."""

from __future__ import annotations

import torch

from mycelium_datasets.teacher import DEFAULT_SYSTEM_PROMPT, build_prompt, generate, load_teacher

PROBLEMS = ["What is 1 + 1?", "Sam has 5 pens and loses 2 of them in the morning. How many pens are left?"]


def test_generate_gives_the_tokens_of_plain_generate(teacher_path):
    model, tokenizer = load_teacher(teacher_path)
    prompts = [build_prompt(tokenizer, p, DEFAULT_SYSTEM_PROMPT) for p in PROBLEMS]
    expected = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=10, do_sample=False)
        ids = output[0, inputs["input_ids"].shape[1] :].tolist()
        stop = ids.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in ids else len(ids)
        expected.append((tokenizer.decode(ids[:stop], skip_special_tokens=True).strip(), stop))
    one_by_one = [generate(model, tokenizer, [p], 10)[0] for p in prompts]
    batched = generate(model, tokenizer, prompts, 10)
    for got in (one_by_one, batched):
        assert [(g["text"], g["n_tokens"]) for g in got] == expected
    assert all(text for text, _ in expected)
