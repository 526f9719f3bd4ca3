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


class EmptyInputError(CaptureError):
    """The prompt or the CoT has no token: there is no row to capture."""


class TooLongError(CaptureError):
    """Prompt + CoT is longer than the model's context."""


@dataclass
class _CaptureState:
    """What the attention function needs while a capture is active (held on each attention module)."""

    cot_start: int  # index of the first CoT token in the sequence
    layers: frozenset[int] | None  # layer indices to capture; None = all
    chunk_rows: int
    total: torch.Tensor | None = None  # (B, T_cot, T) float32: sum over captured layers of head-mean rows
    n_layers: int = 0
    last_layer: int | None = None  # the forward stops once this layer's attention is captured (None: runs whole)


class _Captured(Exception):
    """Raised inside the forward once the last selected layer is captured: later layers cannot change it."""


def _head_mean_rows(query, key, value, rows: slice, q_offset: int, scale: float, mask, chunk_rows: int, out=None):
    """Attention probabilities of the query ``rows`` (float32), averaged over heads, computed ``chunk_rows`` at a
    time with grouped-query attention; when ``out`` is given, also writes those rows' attention output into it.

    Keys beyond a chunk's last query position are never computed (they are masked anyway)."""
    batch, n_heads, _, head_dim = query.shape
    n_kv, k_len = key.shape[1], key.shape[-2]
    groups = n_heads // n_kv
    k = key.float().unsqueeze(2)  # (B, n_kv, 1, K, D)
    v = value.float().unsqueeze(2)
    result = torch.zeros(batch, rows.stop - rows.start, k_len, dtype=torch.float32, device=query.device)
    for start in range(rows.start, rows.stop, chunk_rows):
        stop = min(start + chunk_rows, rows.stop)
        k_max = k_len if mask is not None else q_offset + stop  # causal: later keys are masked
        q = (query[:, :, start:stop].float() * scale).reshape(batch, n_kv, groups, stop - start, head_dim)
        scores = torch.matmul(q, k[..., :k_max, :].transpose(-1, -2))  # (B, n_kv, G, R, k_max)
        if mask is not None:
            m = mask[:, :, start:stop, :k_max].unsqueeze(1)
            if m.shape[2] != 1:
                m = m.reshape(batch, n_kv, groups, stop - start, k_max)
            scores = scores.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else scores + m.float()
        else:
            query_pos = torch.arange(q_offset + start, q_offset + stop, device=query.device)
            key_pos = torch.arange(k_max, device=query.device)
            scores = scores.masked_fill(key_pos[None, :] > query_pos[:, None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        result[:, start - rows.start : stop - rows.start, :k_max] = probs.mean(dim=(1, 2))
        if out is not None:  # (B, n_kv, G, R, D) -> (B, R, H, D)
            chunk = torch.matmul(probs, v[..., :k_max, :]).reshape(batch, n_heads, stop - start, head_dim)
            out[:, start:stop] = chunk.transpose(1, 2).to(out.dtype)
    return result


def _capture_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA attention that also accumulates head-mean CoT rows when the module is being captured.

    Without a padding mask (one sequence), the CoT rows' output is computed from the very probabilities that are
    captured (so the capture costs little more than the attention it replaces) and the prompt rows go through SDPA.
    With a mask, the whole output comes from SDPA and the CoT rows are computed beside it.
    """
    state: _CaptureState | None = getattr(module, "_mycelium_capture", None)
    if state is None or (state.layers is not None and getattr(module, "layer_idx", -1) not in state.layers):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    if state.total is None:
        raise CaptureError("capture state has no buffer; use capture_cot_attention")
    q_len, k_len, head_dim = query.shape[2], key.shape[-2], query.shape[-1]
    scale = scaling if scaling is not None else head_dim**-0.5
    q_offset = k_len - q_len  # the queries are the last q_len positions of the keys
    first = max(state.cot_start - q_offset, 0)
    if first >= q_len:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    rows = slice(first, q_len)
    if attention_mask is not None or q_offset != 0:
        output = sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
        mask = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else None
        captured = _head_mean_rows(query, key, value, rows, q_offset, scale, mask, state.chunk_rows)
    else:
        out = torch.empty(query.shape[0], q_len, query.shape[1], head_dim, dtype=query.dtype, device=query.device)
        if first > 0:
            extra = {k: v for k, v in kwargs.items() if k != "is_causal"}
            prompt_out, _ = sdpa_attention_forward(
                module,
                query[:, :, :first],
                key[:, :, :first],
                value[:, :, :first],
                None,
                scaling=scaling,
                dropout=dropout,
                is_causal=True,
                **extra,
            )
            out[:, :first] = prompt_out
        captured = _head_mean_rows(query, key, value, rows, 0, scale, None, state.chunk_rows, out=out)
        output = (out, None)
    offset = q_offset + first - state.cot_start  # row index of the first captured query among the CoT rows
    state.total[:, offset : offset + captured.shape[1], :k_len] += captured
    state.n_layers += 1
    if state.last_layer is not None and getattr(module, "layer_idx", -1) == state.last_layer:
        raise _Captured
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
        raise EmptyInputError(f"need a non-empty prompt and CoT; got prompt {cot_start} and CoT {n_cot} tokens")
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and total_len > context:
        raise TooLongError(f"prompt + CoT is {total_len} tokens, longer than the model's context ({context})")
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
        # layers 0..9 of 30 stop the forward after layer 9: a third of the compute
        last_layer=max(layers) if layers is not None and max(layers) < n_layers - 1 else None,
    )
    # The base model (no LM head): capture needs the attention, not the logits over the vocabulary.
    body = getattr(model, "base_model", model)
    with _capturing(model, state), torch.inference_mode():
        try:
            body(input_ids=ids.to(model.device), use_cache=False)
        except _Captured:
            pass  # every selected layer is captured: the layers above it are not run
    expected = len(layers) if layers is not None else n_layers
    if state.n_layers == 0:
        raise CaptureError(
            f"no attention was captured from {type(model).__name__}: its attention layers did not call the "
            "attention interface (the field guide's eager/output_attentions pitfall)"
        )
    if state.n_layers != expected:
        raise CaptureError(f"captured {state.n_layers} layers, expected {expected}")
    return (state.total[0] / state.n_layers).cpu()
