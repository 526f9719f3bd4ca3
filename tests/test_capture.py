"""Teacher-forced capture equals the token-by-token KV-cache rows (docs/design.md decision 1), on real small models."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from mycelium_datasets.capture import CaptureError, EmptyInputError, TooLongError, capture_cot_attention


def tiny(cls, config_cls, **extra):
    torch.manual_seed(0)
    config = config_cls(
        vocab_size=128,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=256,
        **extra,
    )
    return cls(config).eval()


def kv_cache_rows(model, prompt: list[int], cot: list[int], layers: list[int]) -> torch.Tensor:
    """The reference: feed the CoT one token at a time with a KV cache and eager output_attentions.

    The step whose *input* is CoT token i returns the attention row of query i (a generate() loop returns it at the
    step that *produces* token i+1: the off-by-one trap)."""
    model.set_attn_implementation("eager")
    total = len(prompt) + len(cot)
    rows = []
    with torch.inference_mode():
        cache = model(input_ids=torch.tensor([prompt]), use_cache=True).past_key_values
        for token in cot:
            out = model(
                input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True, output_attentions=True
            )
            cache = out.past_key_values
            row = torch.stack([out.attentions[layer][0, :, 0, :] for layer in layers]).mean(dim=(0, 1))
            rows.append(torch.nn.functional.pad(row, (0, total - row.shape[0])))
    model.set_attn_implementation("sdpa")
    return torch.stack(rows)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_capture_equals_token_by_token_rows(family):
    model = tiny(LlamaForCausalLM, LlamaConfig) if family == "llama" else tiny(Qwen2ForCausalLM, Qwen2Config)
    model.set_attn_implementation("sdpa")
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 128, (17,), generator=generator).tolist()
    cot = torch.randint(0, 128, (23,), generator=generator).tolist()
    for layers in ([0], [1], [2], [0, 1, 2]):
        captured = capture_cot_attention(model, prompt + cot, len(prompt), layers=layers, chunk_rows=5)
        reference = kv_cache_rows(model, prompt, cot, layers)
        assert captured.shape == (23, 40)
        assert torch.allclose(captured, reference, atol=1e-5), (captured - reference).abs().max()
    assert torch.allclose(captured.sum(-1), torch.ones(23), atol=1e-5)
    assert model.config._attn_implementation == "sdpa"  # restored


def test_capture_on_the_embedded_teacher(teacher_path):
    model = AutoModelForCausalLM.from_pretrained(teacher_path, dtype=torch.float32, attn_implementation="sdpa").eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    prompt = tokenizer(
        "<|im_start|>user\nNatalia sold 48 clips in April and half as many in May.<|im_end|>\n<|im_start|>assistant\n",
        add_special_tokens=False,
    )["input_ids"]
    cot = tokenizer("In May she sold 48/2 = 24 clips.", add_special_tokens=False)["input_ids"]
    layers = [0, 14, 29]
    captured = capture_cot_attention(model, prompt + cot, len(prompt), layers=layers)
    assert torch.allclose(captured, kv_cache_rows(model, prompt, cot, layers), atol=1e-5)


def test_generate_attentions_are_off_by_one():
    """What a generate() loop returns at the step that produces token t is the row of query t-1."""
    model = tiny(LlamaForCausalLM, LlamaConfig)
    prompt = list(range(5, 20))
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=6,
            do_sample=False,
            output_attentions=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
    model.set_attn_implementation("sdpa")
    generated = out.sequences[0, len(prompt) :].tolist()
    captured = capture_cot_attention(model, prompt + generated, len(prompt), layers=[1])
    # step 1 (query = generated token 0) returns the row of CoT token 0, which produced generated token 1
    step1 = out.attentions[1][1][0, :, -1, :].mean(0)
    assert torch.allclose(captured[0, : step1.shape[0]], step1, atol=1e-5)
    assert not torch.allclose(captured[1, : step1.shape[0] + 1][:-1], step1, atol=1e-3)


def test_logits_are_unchanged_by_capture():
    model = tiny(LlamaForCausalLM, LlamaConfig)
    model.set_attn_implementation("sdpa")
    ids = torch.arange(3, 40)[None]
    with torch.inference_mode():
        before = model(input_ids=ids).logits
    capture_cot_attention(model, ids, 10)
    with torch.inference_mode():
        after = model(input_ids=ids).logits
    assert torch.allclose(before, after, atol=1e-5)  # only the capture call computes CoT rows in float32 eager


def test_bad_inputs_fail_loudly():
    model = tiny(LlamaForCausalLM, LlamaConfig)
    # each failure has its own type (jsd_spans records them as span_status by type, never by message text)
    with pytest.raises(EmptyInputError, match="non-empty prompt and CoT"):
        capture_cot_attention(model, [1, 2, 3], 3)
    with pytest.raises(TooLongError, match="longer than the model's context"):
        capture_cot_attention(model, list(range(100)) * 3, 10)
    with pytest.raises(ValueError, match="out of range"):
        capture_cot_attention(model, list(range(20)), 10, layers=[7])

    class NoAttention(torch.nn.Module):
        config = model.config

        def forward(self, **kwargs):
            return None

    with pytest.raises(CaptureError, match="no attention modules"):
        capture_cot_attention(NoAttention(), list(range(20)), 10)

    class Bypass(torch.nn.Module):
        """Has attention modules, but its forward never calls the attention interface."""

        config = model.config
        device = torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.attn = torch.nn.Identity()
            self.attn.layer_idx, self.attn.num_key_value_groups = 0, 1

        def set_attn_implementation(self, name):
            pass

        def forward(self, input_ids, **kwargs):
            return self.attn(input_ids)

    with pytest.raises(CaptureError, match="no attention was captured"):
        capture_cot_attention(Bypass(), list(range(20)), 10)


def test_a_prefix_of_layers_stops_the_forward_early_with_the_same_rows():
    """Layers above the last selected one cannot change its attention: the forward stops there, rows unchanged."""
    import mycelium_datasets.capture as capture_mod

    model = tiny(LlamaForCausalLM, LlamaConfig)
    ids = list(range(3, 40))
    calls = []
    original = capture_mod.sdpa_attention_forward

    def counting(module, *args, **kwargs):
        calls.append(module.layer_idx)
        return original(module, *args, **kwargs)

    capture_mod.sdpa_attention_forward = counting
    try:
        early = capture_cot_attention(model, ids, 10, layers=[0])
    finally:
        capture_mod.sdpa_attention_forward = original
    assert 1 not in calls  # layer 1 never ran
    n_layers = len(capture_mod.attention_modules(model))
    assert n_layers > 1
    whole = capture_cot_attention(model, ids, 10, layers=[0, n_layers - 1]) * 2 - capture_cot_attention(
        model, ids, 10, layers=[n_layers - 1]
    )
    assert torch.allclose(early, whole, atol=1e-5)
