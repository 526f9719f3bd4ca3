"""Teacher models: loading once per process, prompting with the chat template, batched greedy generation.

Generation uses Hugging Face ``generate`` with left padding and SDPA attention, so it runs anywhere transformers
does, and costs what a plain ``model.generate`` does (0.99x, benchmarks/bench_teacher_generation.py); on CPU it
runs on the free cores (:mod:`.threads`). Attention is *not* captured here: it is captured later by one
teacher-forced forward pass (DESIGN.md, decision 1).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from .defaults import resolve_teacher
from .threads import generation_threads, torch_threads

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the problem step by step, one short sentence per step, "
    "and finish with the line 'The answer is N.'"
)


@lru_cache(maxsize=2)
def load_teacher(name_or_path: str, device: str | None = None):
    """Load ``(model, tokenizer)`` for a teacher once per process (embedded names are resolved and converted)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_teacher(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    model.to(device).eval()
    return model, tokenizer


def build_prompt(tokenizer, problem: str, system_prompt: str | None) -> str:
    """The chat-template prompt text for a problem (with the generation prompt appended)."""
    messages = [{"role": "user", "content": problem}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix = f"{system_prompt}\n\n" if system_prompt else ""
    return f"{prefix}Problem: {problem}\nSolution:"


def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    max_prompt_tokens: int | None = None,
    num_threads: int | None = None,
) -> list[dict]:
    """Generate one completion per prompt in one padded batch.

    Returns, per prompt, ``{"text", "finish_reason", "n_tokens"}`` with ``finish_reason`` ``"stop"`` when an end
    token was produced and ``"length"`` when ``max_new_tokens`` ran out (a truncated CoT is never scored silently).
    Prompts longer than ``max_prompt_tokens`` (default: the model's context minus ``max_new_tokens``) are not run
    and come back with ``finish_reason="prompt_too_long"``. On CPU, ``num_threads`` torch threads generate (default:
    :func:`.threads.generation_threads`, the free cores); the count is put back after.
    """
    import torch

    context = getattr(model.config, "max_position_embeddings", None) or 1_000_000
    limit = max_prompt_tokens or max(1, context - max_new_tokens)
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    results: list[dict | None] = [None] * len(prompts)
    runnable = [i for i, n in enumerate(lengths) if n <= limit]
    for i, n in enumerate(lengths):
        if n > limit:
            results[i] = {"text": "", "finish_reason": "prompt_too_long", "n_tokens": 0}
    if runnable:
        batch = tokenizer([prompts[i] for i in runnable], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        eos_ids = model.generation_config.eos_token_id
        if eos_ids is None:
            eos_ids = tokenizer.eos_token_id
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
        on_cpu = model.device.type == "cpu"
        threads = (num_threads or generation_threads()) if on_cpu else torch.get_num_threads()
        with torch.inference_mode(), torch_threads(threads):
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
        for i, tokens in zip(runnable, new_tokens):
            stop_at = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
            kept = tokens if stop_at is None else tokens[:stop_at]
            results[i] = {
                "text": tokenizer.decode(kept, skip_special_tokens=True).strip(),
                "finish_reason": "length" if stop_at is None else "stop",
                "n_tokens": len(kept),
            }
    return results  # type: ignore[return-value]
