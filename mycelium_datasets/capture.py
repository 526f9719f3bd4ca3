"""Teacher-forced attention capture (DESIGN.md, decision 1).

For a causal model, the attention row of CoT token *t* is the same whether *t* was just generated (KV cache) or is
fed back in one pass. So one forward over ``prompt + CoT`` gives every row, and only what JSD and IAF need is kept:
for the selected layers, the **head-mean** attention row of each CoT token over all earlier positions, summed over
layers as the forward goes (so memory grows with T, not L·H·T²), computed in chunks of CoT rows.

How: an attention function registered with transformers' ``AttentionInterface`` under the name
``mycelium_capture``. It returns the model's normal SDPA output (so logits are unchanged) and, for layers being
captured, also computes ``softmax(q·kᵀ·scale + mask)`` for the CoT query rows only, in float32, grouped-query
attention included. Works for every model whose attention layers call the interface (Llama, Qwen2, Mistral, ...).
Nothing captured is an error, never an empty result (the field guide's ``eager`` pitfall).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

logger = logging.getLogger(__name__)

IMPLEMENTATION = "mycelium_capture"


class CaptureError(RuntimeError):
    """Attention could not be captured (nothing recorded, or the model does not route through the interface)."""


@dataclass
class _CaptureState:
    """What the attention function needs while a capture is active (held on each attention module)."""

    cot_start: int  # index of the first CoT token in the sequence
    layers: frozenset[int] | None  # layer indices to capture; None = all
    chunk_rows: int
    total: torch.Tensor | None = None  # (B, T_cot, T) float32: sum over captured layers of head-mean rows
    n_layers: int = 0


def _capture_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA attention that also accumulates head-mean CoT rows when the module is being captured."""
    output = sdpa_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
    )
    state: _CaptureState | None = getattr(module, "_mycelium_capture", None)
    if state is None or (state.layers is not None and getattr(module, "layer_idx", -1) not in state.layers):
        return output
    batch, n_heads, q_len, head_dim = query.shape
    k_len, n_kv = key.shape[-2], key.shape[1]
    groups = n_heads // n_kv
    scale = scaling if scaling is not None else head_dim**-0.5
    # Absolute positions of the query rows: the queries are the last q_len positions of the k_len keys.
    q_offset = k_len - q_len
    first = max(state.cot_start - q_offset, 0)
    if first >= q_len:
        return output
    k = key.float().unsqueeze(2)  # (B, n_kv, 1, K, D)
    rows_total = torch.zeros(batch, q_len - first, k_len, dtype=torch.float32, device=query.device)
    key_pos = torch.arange(k_len, device=query.device)
    for start in range(first, q_len, state.chunk_rows):
        stop = min(start + state.chunk_rows, q_len)
        q = query[:, :, start:stop].float().reshape(batch, n_kv, groups, stop - start, head_dim)
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B, n_kv, G, R, K)
        if attention_mask is not None and attention_mask.dim() == 4:
            mask = attention_mask[:, :, start:stop, :k_len].unsqueeze(1)  # (B, 1, 1|H, R, K) -> broadcast
            if mask.shape[2] != 1:
                mask = mask.reshape(batch, n_kv, groups, stop - start, k_len)
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, float("-inf"))
            else:
                scores = scores + mask.float()
        else:
            query_pos = torch.arange(q_offset + start, q_offset + stop, device=query.device)
            causal = key_pos[None, :] <= query_pos[:, None]  # (R, K)
            scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        rows_total[:, start - first : stop - first] = probs.mean(dim=(1, 2))
    # Rows before cot_start in this call are not CoT rows; rows are indexed from the first CoT token.
    offset = q_offset + first - state.cot_start
    if state.total is None:
        raise CaptureError("capture state has no buffer; use capture_cot_attention")
    state.total[:, offset : offset + rows_total.shape[1], :k_len] += rows_total
    state.n_layers += 1
    return output


AttentionInterface.register(IMPLEMENTATION, _capture_attention)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def attention_modules(model) -> list:
    """The self-attention modules of a decoder (those with a ``layer_idx``), in layer order."""
    modules = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "num_key_value_groups")]
    return sorted(modules, key=lambda m: m.layer_idx)


@contextmanager
def _capturing(model, state: _CaptureState):
    modules = attention_modules(model)
    if not modules:
        raise CaptureError(
            f"{type(model).__name__} has no attention modules with a layer_idx; attention cannot be captured from it"
        )
    previous = model.config._attn_implementation
    model.set_attn_implementation(IMPLEMENTATION)
    for m in modules:
        m._mycelium_capture = state
    try:
        yield
    finally:
        for m in modules:
            m._mycelium_capture = None
        model.set_attn_implementation(previous)


def capture_cot_attention(
    model,
    input_ids: torch.Tensor | list[int],
    cot_start: int,
    layers: list[int] | None = None,
    chunk_rows: int = 256,
) -> torch.Tensor:
    """Mean over the selected layers of the head-mean attention rows of the CoT tokens, from one forward pass.

    Args:
        model: a causal LM from transformers whose attention layers call the attention interface.
        input_ids: ``prompt + CoT`` token ids, one sequence (a list or a ``(T,)`` / ``(1, T)`` tensor).
        cot_start (`int`): index of the first CoT token (the prompt length).
        layers (`list[int]`, *optional*): layers to average; all layers when `None`.
        chunk_rows (`int`, *optional*, defaults to 256): CoT rows computed at once per layer (bounds memory).

    Returns:
        A float32 tensor ``(T_cot, T)``: row *t* is the attention of CoT token *t* (absolute position
        ``cot_start + t``) over positions ``0 .. cot_start + t``; later positions are 0. Rows sum to 1.
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.shape[0] != 1:
        raise ValueError("capture_cot_attention takes one sequence at a time")
    total_len = ids.shape[1]
    n_cot = total_len - cot_start
    if cot_start < 1 or n_cot < 1:
        raise CaptureError(f"need a non-empty prompt and CoT; got prompt {cot_start} and CoT {n_cot} tokens")
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and total_len > context:
        raise CaptureError(f"prompt + CoT is {total_len} tokens, longer than the model's context ({context})")
    n_layers = len(attention_modules(model))
    if n_layers == 0:
        raise CaptureError(
            f"{type(model).__name__} has no attention modules with a layer_idx; attention cannot be captured from it"
        )
    if layers is not None:
        bad = [layer for layer in layers if not 0 <= layer < n_layers]
        if bad or not layers:
            raise ValueError(f"layers {bad or layers} out of range: the model has {n_layers} layers")
    state = _CaptureState(
        cot_start=cot_start,
        layers=frozenset(layers) if layers is not None else None,
        chunk_rows=chunk_rows,
        total=torch.zeros(1, n_cot, total_len, dtype=torch.float32, device=model.device),
    )
    with _capturing(model, state), torch.inference_mode():
        model(input_ids=ids.to(model.device), use_cache=False)
    expected = len(layers) if layers is not None else n_layers
    if state.n_layers == 0:
        raise CaptureError(
            f"no attention was captured from {type(model).__name__}: its attention layers did not call the "
            "attention interface (the field guide's eager/output_attentions pitfall)"
        )
    if state.n_layers != expected:
        raise CaptureError(f"captured {state.n_layers} layers, expected {expected}")
    return (state.total[0] / state.n_layers).cpu()
