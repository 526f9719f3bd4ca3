"""The three Mycelium students, each a configuration/modeling pair in the transformers mould.

``MyceliumTagger`` (token classification, IO labels) and ``MyceliumOpClassifier`` (sequence classification over
each unit's operation sequence) wrap any ``AutoModel`` backbone, encoder or decoder: the tagger labels every token of
the backbone's last hidden state; the classifier pools it (``mean`` over the attention mask for encoders, ``last``
token for decoders). ``MyceliumBinder`` is a pointer network over the same kind of backbone: given the problem, its
units and the operation in each, it points every operand at a quantity the problem writes, another operation's
result or a vocabulary constant, and scores which operation is the answer. All return ``loss`` when given
``labels``, so ``Trainer`` uses them as they are, and all register with the Auto classes: after
``import mycelium_models``, ``AutoModelForTokenClassification`` / ``AutoModelForSequenceClassification`` /
``AutoModel.from_pretrained(dir)`` load them with no ``trust_remote_code``. This file registers nothing itself: it is
also each released student's remote code.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput
from transformers.utils import ModelOutput

IO_LABELS = ("O", "OP")


class _BackboneConfigMixin:
    def backbone_auto_config(self) -> PretrainedConfig:
        if not self.backbone_config:
            raise ValueError(f"{type(self).__name__} has no backbone_config; build the model with from_backbone()")
        data = dict(self.backbone_config)
        return AutoConfig.for_model(data.pop("model_type"), **data)


class MyceliumTaggerConfig(_BackboneConfigMixin, PretrainedConfig):
    """Configuration of :class:`MyceliumTagger`.

    Args:
        backbone_config (`dict`, *optional*): the backbone's config (``model_type`` and its fields).
        backbone_name (`str`, *optional*): the backbone's name, for the record (a Hub id: no path of the machine
            that trained it).
        classifier_dropout (`float`, *optional*, defaults to 0.1): dropout before the token head.
    """

    model_type = "mycelium_tagger"

    def __init__(
        self, backbone_config: dict | None = None, backbone_name: str = "", classifier_dropout: float = 0.1, **kwargs
    ):
        kwargs.setdefault("id2label", dict(enumerate(IO_LABELS)))
        kwargs.setdefault("label2id", {v: k for k, v in enumerate(IO_LABELS)})
        super().__init__(**kwargs)
        self.backbone_config = backbone_config
        self.backbone_name = backbone_name
        self.classifier_dropout = classifier_dropout


class MyceliumOpClassifierConfig(_BackboneConfigMixin, PretrainedConfig):
    """Configuration of :class:`MyceliumOpClassifier`.

    Args:
        backbone_config (`dict`, *optional*): the backbone's config (``model_type`` and its fields).
        backbone_name (`str`, *optional*): where the backbone came from, for the record.
        pooling (`str`, *optional*, defaults to `"mean"`): ``mean`` (encoders) or ``last`` (decoders).
        classifier_dropout (`float`, *optional*, defaults to 0.1): dropout before the head.
    """

    model_type = "mycelium_op_classifier"

    def __init__(
        self,
        backbone_config: dict | None = None,
        backbone_name: str = "",
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        self.backbone_config = backbone_config
        self.backbone_name = backbone_name
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout


class _MyceliumPreTrainedModel(PreTrainedModel):
    base_model_prefix = "backbone"

    @property
    def supports_gradient_checkpointing(self) -> bool:
        """Activation (gradient) checkpointing is the backbone's: ``gradient_checkpointing_enable()`` marks the
        backbone's layers, which recompute their activations in the backward pass; the student's own layers are
        small and keep theirs. Supported when the backbone supports it (BERT, Qwen2 and most ``AutoModel``s do)."""
        backbone = self._modules.get("backbone")
        return bool(backbone is not None and backbone.supports_gradient_checkpointing)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear) and getattr(module, "_mycelium_head", False):
            module.weight.data.normal_(mean=0.0, std=0.02)
            module.bias.data.zero_()
        elif isinstance(module, nn.Embedding) and getattr(module, "_mycelium_head", False):
            module.weight.data.normal_(mean=0.0, std=0.02)

    @classmethod
    def from_backbone(cls, name_or_path: str, backbone_name: str | None = None, **config_kwargs):
        """A new student around a pretrained backbone (weights loaded from ``name_or_path``), with a freshly
        initialized head. ``backbone_name`` is what the config records as the backbone's name (default
        ``name_or_path``): give a Hub id when ``name_or_path`` is a path of this machine, or the saved config
        carries it."""
        backbone = AutoModel.from_pretrained(name_or_path)
        backbone_name = backbone_name or name_or_path
        backbone_config = {**backbone.config.to_dict(), "_name_or_path": backbone_name}
        config = cls.config_class(backbone_config=backbone_config, backbone_name=backbone_name, **config_kwargs)
        model = cls(config)
        model.backbone.load_state_dict(backbone.state_dict())
        return model

    def _build_backbone_and_head(self, config) -> None:
        """The backbone (from its config; weights come with from_pretrained / from_backbone) and a linear head."""
        backbone_config = config.backbone_auto_config()
        self.backbone = AutoModel.from_config(backbone_config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Linear(backbone_config.hidden_size, config.num_labels)
        self.head._mycelium_head = True
        self.post_init()

    def _hidden(self, input_ids, attention_mask, **kwargs) -> torch.Tensor:
        # pass on only what the backbone takes (a BERT takes token_type_ids, a Qwen2 does not)
        accepted = inspect.signature(self.backbone.forward).parameters
        extra = {k: v for k, v in kwargs.items() if k in accepted and v is not None}
        if "use_cache" in accepted:  # a decoder backbone: one pass over the whole text, no KV cache to keep
            extra["use_cache"] = False
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return outputs.last_hidden_state


class MyceliumTagger(_MyceliumPreTrainedModel):
    """IO tagger: labels each token O or OP; any contiguous OP run is an operation region."""

    config_class = MyceliumTaggerConfig

    def __init__(self, config: MyceliumTaggerConfig):
        super().__init__(config)
        self._build_backbone_and_head(config)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> TokenClassifierOutput:
        hidden = self._hidden(input_ids, attention_mask, **kwargs)
        logits = self.head(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class MyceliumOpClassifier(_MyceliumPreTrainedModel):
    """Operation classifier: one label per problem-text region."""

    config_class = MyceliumOpClassifierConfig

    def __init__(self, config: MyceliumOpClassifierConfig):
        super().__init__(config)
        self._build_backbone_and_head(config)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.config.pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        # last non-padding token (right padding) for decoders
        last = attention_mask.sum(1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        hidden = self._hidden(input_ids, attention_mask, **kwargs)
        logits = self.head(self.dropout(self.pool(hidden, attention_mask)))
        loss = nn.functional.cross_entropy(logits, labels.view(-1)) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


# Pointer kinds of the binder's candidates, in the order they are laid out: quantities, constants, results, END.
POINTER_KINDS = ("quantity", "constant", "op", "end")
POINTER_CODE = 10_000  # a pointer label is kind * POINTER_CODE + index; -100 is ignored
NEG = -1e4  # the score of a candidate that cannot be chosen


class MyceliumBinderConfig(_BackboneConfigMixin, PretrainedConfig):
    """Configuration of :class:`MyceliumBinder`.

    Args:
        backbone_config (`dict`, *optional*): the backbone's config (``model_type`` and its fields).
        backbone_name (`str`, *optional*): where the backbone came from, for the record.
        op_names (`list[str]`, *optional*): the operations the binder knows (their order is their embedding index).
        constants (`list[str]`, *optional*): the constant vocabulary a pointer may name (learned from the training
            split of the ``bindings`` artifact).
        arity (`dict`, *optional*): ``{op: [fewest, most]}`` operands of each operation (decoding honours it).
        max_operands (`int`, *optional*, defaults to 6): operand slots per operation (one more slot says END).
        max_ops (`int`, *optional*, defaults to 32): operations per problem with their own position embedding.
        pointer_size (`int`, *optional*, defaults to 128): width of the additive pointer attention.
        interaction_layers (`int`, *optional*, defaults to 2): transformer layers in which the operations, the
            quantities and the constants attend to each other before pointing (0: none).
        classifier_dropout (`float`, *optional*, defaults to 0.1): dropout on the representations.
        binding_beams (`int`, *optional*, defaults to 4): whole-problem bindings kept while decoding (1: greedy).
        max_input_tokens (`int`, *optional*, defaults to 256): the longest problem in tokens, as trained (the solver
            reads the same length).
    """

    model_type = "mycelium_binder"
    keys_to_ignore_at_inference = ["pointer_scores"]  # (B, K, S, N): N varies by batch; predictions suffice

    def __init__(
        self,
        backbone_config: dict | None = None,
        backbone_name: str = "",
        op_names: list[str] | None = None,
        constants: list[str] | None = None,
        arity: dict | None = None,
        max_operands: int = 6,
        max_ops: int = 32,
        pointer_size: int = 128,
        interaction_layers: int = 2,
        classifier_dropout: float = 0.1,
        binding_beams: int = 4,
        max_input_tokens: int = 256,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone_config = backbone_config
        self.backbone_name = backbone_name
        self.binding_beams = binding_beams
        self.max_input_tokens = max_input_tokens
        self.interaction_layers = interaction_layers
        self.op_names = list(op_names or [])
        self.constants = list(constants or [])
        self.arity = {k: list(v) for k, v in (arity or {}).items()}
        self.max_operands = max_operands
        self.max_ops = max_ops
        self.pointer_size = pointer_size
        self.classifier_dropout = classifier_dropout


@dataclass
class BinderOutput(ModelOutput):
    """``loss`` (with labels); ``pointer_scores`` ``(B, K, S, N)`` over the candidates of each operand slot;
    ``pointer_predictions`` ``(B, K, S)`` the best candidate of each slot as a pointer code; ``answer_scores``
    ``(B, K)``."""

    loss: torch.Tensor | None = None
    pointer_predictions: torch.Tensor | None = None
    answer_scores: torch.Tensor | None = None
    pointer_scores: torch.Tensor | None = None


def _span_mean(hidden: torch.Tensor, spans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``hidden`` ``(B, T, H)`` over token spans ``(B, M, 2)`` ``[start, end)``; an empty span (padding)
    gives zeros and a False in the returned mask ``(B, M)``."""
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    inside = (positions[None, None, :] >= spans[..., :1]) & (positions[None, None, :] < spans[..., 1:])
    weights = inside.to(hidden.dtype)
    count = weights.sum(-1, keepdim=True)
    return torch.bmm(weights, hidden) / count.clamp(min=1), count.squeeze(-1) > 0


class MyceliumBinder(_MyceliumPreTrainedModel):
    """Operand binding, dependency and answer selection: a pointer network over quantities, constants and results.

    For operation ``i`` (its unit and its operation given) and operand slot ``s``, a query made of the unit, the
    operation, the slot and the operand chosen at slot ``s - 1`` scores every candidate (additive attention plus a
    bilinear term): the problem's quantities (their tokens' mean and a value feature), the constant vocabulary, the
    other operations' results and END. Pair features say where a quantity lies against the operation's unit
    (before, inside, after), how far a result is in the layout, and how often a candidate was already taken by the
    operations laid out before (most numbers are used once). The answer head scores each operation. Decoding
    (:meth:`decode`) keeps each operation's arity and never closes a cycle.
    """

    config_class = MyceliumBinderConfig

    def __init__(self, config: MyceliumBinderConfig):
        super().__init__(config)
        backbone_config = config.backbone_auto_config()
        self.backbone = AutoModel.from_config(backbone_config)
        hidden, size = backbone_config.hidden_size, config.pointer_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.op_embed = nn.Embedding(max(1, len(config.op_names)), hidden)
        self.constant_embed = nn.Embedding(max(1, len(config.constants)), hidden)
        self.kind_embed = nn.Embedding(len(POINTER_KINDS), hidden)
        self.slot_embed = nn.Embedding(config.max_operands + 1, hidden)
        self.position_embed = nn.Embedding(config.max_ops, hidden)
        self.value_proj = nn.Linear(3, hidden)
        self.order_embed = nn.Embedding(config.max_ops, hidden)  # a quantity's rank in text order
        self.op_proj = nn.Linear(2 * hidden, hidden)
        heads = next(h for h in (8, 6, 4, 3, 2, 1) if hidden % h == 0)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 2 * hidden, config.classifier_dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.interaction = (
            nn.TransformerEncoder(layer, config.interaction_layers, enable_nested_tensor=False)
            if config.interaction_layers
            else None
        )
        self.query = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 2 * size))
        self.candidate = nn.Linear(hidden, 2 * size)
        self.place_embed = nn.Embedding(3, size)  # a quantity before / inside / after the operation's unit
        self.distance_embed = nn.Embedding(2 * 8 + 1, size)  # layout distance of a result, clipped to [-8, 8]
        self.used_embed = nn.Embedding(3, size)  # taken by 0, 1, 2+ operations laid out before
        self.score = nn.Linear(size, 1)
        self.answer = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)) and module is not self.backbone:
                module._mycelium_head = True
        for module in self.backbone.modules():
            module._mycelium_head = False
        self.post_init()

    # -- representations -------------------------------------------------------------------------------------------

    def _candidates(self, hidden, quantity_spans, quantity_values, unit_spans, op_units, op_ids):
        """Candidate representations ``(B, N, H)`` in the order quantities, constants, results, END, their mask
        ``(B, N)``, the operations' representations ``(B, K, H)`` and their units' ``(B, K, H)``."""
        batch = hidden.shape[0]
        quantity, quantity_mask = _span_mean(hidden, quantity_spans)
        ranks = torch.arange(quantity.shape[1], device=hidden.device).clamp(max=self.config.max_ops - 1)
        quantity = quantity + self.value_proj(quantity_values) + self.kind_embed.weight[0] + self.order_embed(ranks)
        n_constants = len(self.config.constants)
        constant = (self.constant_embed.weight[:n_constants] + self.kind_embed.weight[1]).expand(batch, -1, -1)
        units, _ = _span_mean(hidden, unit_spans)
        op_mask = op_ids >= 0
        op_unit = torch.gather(units, 1, op_units.clamp(min=0)[..., None].expand(-1, -1, units.shape[-1]))
        positions = torch.arange(op_ids.shape[1], device=hidden.device).clamp(max=self.config.max_ops - 1)
        op = self.op_proj(torch.cat([op_unit, self.op_embed(op_ids.clamp(min=0))], -1)) + self.position_embed(
            positions
        )
        if self.interaction is not None:  # operations, quantities and constants see each other
            n_k, n_q = op.shape[1], quantity.shape[1]
            joint = torch.cat([op, quantity, constant], 1)
            keep = torch.cat([op_mask, quantity_mask, torch.ones_like(constant[..., 0], dtype=torch.bool)], 1)
            joint = self.interaction(joint, src_key_padding_mask=~keep)
            op, quantity, constant = joint[:, :n_k], joint[:, n_k : n_k + n_q], joint[:, n_k + n_q :]
        result = op + self.kind_embed.weight[2]
        end = self.kind_embed.weight[3].expand(batch, 1, -1)
        candidates = torch.cat([quantity, constant, result, end], 1)
        mask = torch.cat(
            [
                quantity_mask,
                torch.ones(batch, n_constants, dtype=torch.bool, device=hidden.device),
                op_mask,
                torch.ones(batch, 1, dtype=torch.bool, device=hidden.device),
            ],
            1,
        )
        return self.dropout(candidates), mask, op, op_unit

    def _pair_features(self, quantity_spans, unit_spans, op_units, n_constants):
        """Per (operation, candidate) features ``(B, K, N, size)``: a quantity's place against the operation's unit,
        the layout distance of a result; and the (operation, candidate) pairs that are the operation itself
        ``(B, K, N)``."""
        batch, n_q, n_k = quantity_spans.shape[0], quantity_spans.shape[1], op_units.shape[1]
        op_span = torch.gather(unit_spans, 1, op_units.clamp(min=0)[..., None].expand(-1, -1, 2))  # (B, K, 2)
        starts, ends = quantity_spans[:, None, :, 0], quantity_spans[:, None, :, 1]
        after = starts >= op_span[:, :, None, 1]
        inside = (starts >= op_span[:, :, None, 0]) & (ends <= op_span[:, :, None, 1])
        place = torch.where(inside, 1, torch.where(after, 2, 0))
        quantity_features = self.place_embed(place)  # (B, K, Q, size)
        index = torch.arange(n_k, device=op_units.device)
        distance = (index[None, :] - index[:, None]).clamp(-8, 8) + 8  # candidate j - operation i
        result_features = self.distance_embed(distance)[None].expand(batch, -1, -1, -1)
        size = quantity_features.shape[-1]
        zeros = quantity_features.new_zeros(batch, n_k, n_constants, size)
        end = quantity_features.new_zeros(batch, n_k, 1, size)
        features = torch.cat([quantity_features, zeros, result_features, end], 2)
        self_pair = torch.zeros(batch, n_k, n_q + n_constants + n_k + 1, dtype=torch.bool, device=op_units.device)
        self_pair[:, :, n_q + n_constants : n_q + n_constants + n_k] = torch.eye(n_k, dtype=torch.bool)
        return features, self_pair

    def _slot_scores(self, query, projected, features, used, allowed):
        """Scores of every candidate for one slot: ``query`` ``(..., 2 size)``, ``projected`` candidates ``(..., N,
        2 size)``, ``features`` ``(..., N, size)``, ``used`` counts ``(..., N)``; ``NEG`` where not ``allowed``."""
        size = self.config.pointer_size
        additive, bilinear = query[..., :size], query[..., size:]
        energy = torch.tanh(additive[..., None, :] + projected[..., :size] + features + self.used_embed(used))
        scores = self.score(energy).squeeze(-1) + (projected[..., size:] * bilinear[..., None, :]).sum(-1) / size**0.5
        return scores.masked_fill(~allowed, NEG)

    def _query(self, op, op_unit, slot: int, previous):
        return self.query(torch.cat([op_unit + op, self.slot_embed.weight[slot].expand_as(op), previous], -1))

    # -- training ----------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        quantity_spans=None,
        quantity_values=None,
        unit_spans=None,
        op_units=None,
        op_ids=None,
        labels=None,
        answer_labels=None,
        **kwargs,
    ) -> BinderOutput:
        """Teacher-forced scores of every operand slot of every operation and the answer scores. With ``labels``,
        the operand chosen at slot ``s - 1`` and the candidates taken by the operations laid out before are the
        gold ones; without, the best scored operand and no use counts (use :meth:`decode` to bind).

        ``labels`` ``(B, K, S)``: pointer codes ``kind * POINTER_CODE + index`` (kinds in ``POINTER_KINDS``
        order), -100 to ignore; ``answer_labels`` ``(B, K)``: 1 for the answer operation, 0 for the others, -100
        for padding."""
        hidden = self.dropout(self._hidden(input_ids, attention_mask, **kwargs))
        n_q, n_c, n_k = quantity_spans.shape[1], len(self.config.constants), op_ids.shape[1]
        candidates, mask, op, op_unit = self._candidates(
            hidden, quantity_spans, quantity_values, unit_spans, op_units, op_ids
        )
        features, self_pair = self._pair_features(quantity_spans, unit_spans, op_units, n_c)
        allowed = mask[:, None, :] & ~self_pair
        n = candidates.shape[1]
        flat_labels = self.flat_targets(labels, n_q, n_c, n_k) if labels is not None else None
        if flat_labels is not None:  # how many operations laid out before each one took each candidate
            taken = nn.functional.one_hot(flat_labels.clamp(min=0), n) * (flat_labels >= 0)[..., None]
            taken = taken.sum(2).clamp(max=1)
            used = (taken.cumsum(1) - taken).clamp(max=2)
            used[..., n - 1] = 0
        else:
            used = torch.zeros(features.shape[:3], dtype=torch.long, device=features.device)
        projected = self.candidate(candidates)[:, None]  # (B, 1, N, 2 size)
        scores, predictions = [], []
        previous = torch.zeros_like(op)
        for s in range(self.config.max_operands + 1):
            slot_scores = self._slot_scores(self._query(op, op_unit, s, previous), projected, features, used, allowed)
            scores.append(slot_scores)
            best = slot_scores.argmax(-1)
            predictions.append(best)
            chosen = best if flat_labels is None else flat_labels[:, :, s].clamp(min=0)
            previous = torch.gather(candidates, 1, chosen[..., None].expand(-1, -1, op.shape[-1]))
        pointer_scores = torch.stack(scores, 2)  # (B, K, S, N)
        answer_scores = self.answer(self.dropout(op + op_unit)).squeeze(-1).masked_fill(op_ids < 0, NEG)
        loss = None
        if flat_labels is not None:
            loss = nn.functional.cross_entropy(
                pointer_scores.reshape(-1, pointer_scores.shape[-1]), flat_labels.reshape(-1), ignore_index=-100
            )
            if answer_labels is not None:
                has_answer = (answer_labels == 1).any(-1)
                if has_answer.any():
                    target = answer_labels.clamp(min=0).argmax(-1)
                    loss = loss + nn.functional.cross_entropy(answer_scores[has_answer], target[has_answer])
        codes = self.codes(torch.stack(predictions, 2), n_q, n_c, n_k)
        return BinderOutput(
            loss=loss, pointer_predictions=codes, answer_scores=answer_scores, pointer_scores=pointer_scores
        )

    @staticmethod
    def flat_targets(labels: torch.Tensor, n_q: int, n_c: int, n_k: int) -> torch.Tensor:
        """Pointer codes -> indices into the candidate list (quantities, constants, results, END); -100 kept."""
        kind, index = labels // POINTER_CODE, labels % POINTER_CODE
        offset = torch.tensor([0, n_q, n_q + n_c, n_q + n_c + n_k], device=labels.device)
        flat = offset[kind.clamp(0, 3)] + index
        return torch.where(labels < 0, torch.full_like(labels, -100), flat)

    @staticmethod
    def codes(flat: torch.Tensor, n_q: int, n_c: int, n_k: int) -> torch.Tensor:
        """Indices into the candidate list -> pointer codes (the inverse of :meth:`flat_targets`)."""
        starts = torch.tensor([0, n_q, n_q + n_c, n_q + n_c + n_k], device=flat.device)
        kind = (flat[..., None] >= starts).sum(-1) - 1
        return kind * POINTER_CODE + flat - starts[kind]

    # -- inference ---------------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def decode(
        self,
        input_ids,
        attention_mask,
        quantity_spans,
        quantity_values,
        unit_spans,
        op_units,
        op_ids,
        num_beams: int | None = None,
        **kwargs,
    ):
        """Pointers for every operation of every problem (in layout order), and the answer operation.

        Each operation's slots are filled one after another; END is allowed once the operation has its fewest
        operands and forced at its most; a candidate is not taken twice by one operation, and a result is not
        taken when the operation producing it already depends on the one being bound (no cycle). A beam of
        ``num_beams`` whole-problem bindings (default ``config.binding_beams``; 1 is greedy) is kept, scored by the sum
        of their slots' log-probabilities. The answer is the best scored operation among those no other operation
        consumes in the best binding. Returns, per problem, ``{"ops": [[(kind, index), ...], ...], "answer_op":
        int}``."""
        num_beams = max(1, int(num_beams or self.config.binding_beams))
        hidden = self._hidden(input_ids, attention_mask, **kwargs)
        n_q, n_c = quantity_spans.shape[1], len(self.config.constants)
        candidates, mask, op, op_unit = self._candidates(
            hidden, quantity_spans, quantity_values, unit_spans, op_units, op_ids
        )
        features, self_pair = self._pair_features(quantity_spans, unit_spans, op_units, n_c)
        projected = self.candidate(candidates)
        answer_scores = self.answer(op + op_unit).squeeze(-1)
        results = []
        for b in range(op_ids.shape[0]):
            n_k = int((op_ids[b] >= 0).sum())
            keep = torch.cat([torch.arange(n_q + n_c + n_k), torch.tensor([n_q + n_c + op_ids.shape[1]])])
            n = len(keep)
            cand, feat, proj = candidates[b, keep], features[b, :n_k][:, keep], projected[b, keep]
            allowed_all = mask[b, keep][None, :] & ~self_pair[b, :n_k][:, keep]
            beams = [
                _Binding(0.0, [], torch.zeros(n, dtype=torch.long, device=cand.device), [set() for _ in range(n_k)])
            ]
            for i in range(n_k):
                name = self.config.op_names[int(op_ids[b, i])] if self.config.op_names else ""
                low, high = self.config.arity.get(name, [1, self.config.max_operands])
                high = min(high, self.config.max_operands)
                partials = []  # (score, beam, picks, allowed, previous)
                for h, beam in enumerate(beams):
                    allowed = allowed_all[i].clone()
                    for j in range(n_k):  # taking j's result would close a cycle when j already depends on i
                        if i == j or i in beam.depends[j]:
                            allowed[n_q + n_c + j] = False
                    partials.append((beam.score, h, [], allowed, torch.zeros_like(op[b, i])))
                done = []
                for s in range(high + 1):
                    if not partials:
                        break
                    if s >= high:
                        done += partials
                        break
                    query = self._query(
                        op[b, i].expand(len(partials), -1),
                        op_unit[b, i].expand(len(partials), -1),
                        s,
                        torch.stack([p[4] for p in partials]),
                    )
                    allowed = torch.stack([p[3] for p in partials])
                    if s < low:
                        allowed[:, n - 1] = False
                    used = torch.stack([beams[p[1]].used for p in partials]).clamp(max=2)
                    scores = self._slot_scores(query, proj, feat[i], used, allowed)
                    log_probs = torch.log_softmax(scores, -1)
                    grown = []
                    for p, row, logp in zip(partials, scores, log_probs):
                        top = torch.topk(row, min(num_beams, n))
                        if float(top.values[0]) <= NEG / 2:  # nothing left to take
                            done.append(p)
                            continue
                        for value, flat in zip(top.values.tolist(), top.indices.tolist()):
                            if value <= NEG / 2:
                                break
                            score = p[0] + float(logp[flat])
                            if flat == n - 1:
                                done.append((score, p[1], p[2], p[3], p[4]))
                            else:
                                taken = p[3].clone()
                                taken[flat] = False
                                grown.append((score, p[1], p[2] + [flat], taken, cand[flat]))
                    partials = sorted(grown, key=lambda p: -p[0])[:num_beams]
                beams = [
                    beams[h].extend(score, picks, n_q, n_c, n_k, i)
                    for score, h, picks, _, _ in sorted(done, key=lambda p: -p[0])[:num_beams]
                ]
            bound = beams[0].bound  # the beam is sorted best first
            consumed = {index for pointers in bound for kind, index in pointers if kind == "op"}
            sinks = [i for i in range(n_k) if i not in consumed] or list(range(n_k))
            answer = max(sinks, key=lambda i: float(answer_scores[b, i])) if n_k else -1
            results.append({"ops": bound, "answer_op": answer})
        return results


@dataclass
class _Binding:
    """One hypothesis of :meth:`MyceliumBinder.decode`'s beam: its log-probability, the pointers bound so far, how
    many operations took each candidate, and each operation's transitive inputs."""

    score: float
    bound: list
    used: torch.Tensor
    depends: list

    def extend(self, score: float, picks: list[int], n_q: int, n_c: int, n_k: int, i: int) -> _Binding:
        used, depends = self.used.clone(), [set(d) for d in self.depends]
        for flat in set(picks):
            used[flat] += 1
        pointers = []
        for flat in picks:
            if flat < n_q:
                pointers.append(("quantity", flat))
            elif flat < n_q + n_c:
                pointers.append(("constant", flat - n_q))
            else:
                j = flat - n_q - n_c
                pointers.append(("op", j))
                depends[i] |= {j} | depends[j]
                for k in range(n_k):  # everything that depends on i now depends on j's inputs too
                    if i in depends[k]:
                        depends[k] |= depends[i]
        return _Binding(score, self.bound + [pointers], used, depends)


# The step decoder's operations: each step combines two nodes; n-ary add / mul / sub / div are chains of steps.
STEP_OPS = ("add", "sub", "mul", "div")
COMMUTATIVE_STEP_OPS = ("add", "mul")
NODE_KINDS = ("quantity", "constant", "result")
REGION_CODES = {"unknown": 0, "outside": 1, "inside": 2}  # where a quantity lies against the units, if known


class MyceliumStepDecoderConfig(_BackboneConfigMixin, PretrainedConfig):
    """Configuration of :class:`MyceliumStepDecoder`.

    Args:
        backbone_config (`dict`, *optional*): the backbone's config (``model_type`` and its fields).
        backbone_name (`str`, *optional*): where the backbone came from, for the record.
        op_names (`list[str]`, *optional*, defaults to ``STEP_OPS``): the binary operations a step may apply.
        constants (`list[str]`, *optional*): the constant vocabulary a step may take as an operand (learned from the
            training split of the ``bindings`` artifact).
        max_steps (`int`, *optional*, defaults to 12): the most steps of a program (and its result slots).
        max_quantities (`int`, *optional*, defaults to 64): problem quantities a step may take; later ones are not
            candidates (a problem with 2,000 numbers is still decoded in bounded time and memory).
        state_size (`int`, *optional*, defaults to 256): width of the pair scorer.
        region_dropout (`float`, *optional*, defaults to 0.5): in training, the share of problems whose quantities
            are shown without their region (so the decoder also works with no tagger, or a wrong one).
        classifier_dropout (`float`, *optional*, defaults to 0.1): dropout on the representations.
        program_beams (`int`, *optional*, defaults to 8): programs kept while decoding (1: greedy).
        max_input_tokens (`int`, *optional*, defaults to 256): the longest problem in tokens, as trained (the solver
            reads the same length).
        program_length_penalty (`float`, *optional*, defaults to 0.0): complete programs are ranked by their
            log-probability divided by ``steps ** program_length_penalty`` (0: the sum itself; dividing helps
            multi-step GSM8K problems and costs more on one- and two-step ones, docs/students.md), ...
        fraction_penalty (`float`, *optional*, defaults to 3.0): ... less this for a final answer that is not a
            whole number, ...
        unused_penalty (`float`, *optional*, defaults to 2.0): ... and less this for each number the problem writes
            that no step reads (``steps.rank``; the three chosen on training problems' beams, docs/students.md).
    """

    model_type = "mycelium_step_decoder"

    def __init__(
        self,
        backbone_config: dict | None = None,
        backbone_name: str = "",
        op_names: list[str] | None = None,
        constants: list[str] | None = None,
        max_steps: int = 12,
        max_quantities: int = 64,
        state_size: int = 256,
        region_dropout: float = 0.5,
        classifier_dropout: float = 0.1,
        program_beams: int = 8,
        max_input_tokens: int = 256,
        program_length_penalty: float = 0.0,
        fraction_penalty: float = 3.0,
        unused_penalty: float = 2.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone_config = backbone_config
        self.backbone_name = backbone_name
        self.op_names = list(op_names or STEP_OPS)
        self.constants = list(constants or [])
        self.max_steps = max_steps
        self.max_quantities = max_quantities
        self.state_size = state_size
        self.region_dropout = region_dropout
        self.classifier_dropout = classifier_dropout
        self.program_beams = program_beams
        self.max_input_tokens = max_input_tokens
        self.program_length_penalty = program_length_penalty
        self.fraction_penalty = fraction_penalty
        self.unused_penalty = unused_penalty


@dataclass
class StepDecoderOutput(ModelOutput):
    """``loss`` (with labels); ``step_hits`` ``(B, max_steps + 1)``: 1 where the teacher-forced best action is the
    gold one, 0 where not, -1 past the program's end (its STOP included)."""

    loss: torch.Tensor | None = None
    step_hits: torch.Tensor | None = None


@dataclass
class StepDecoderState:
    """What a step needs of a problem (or of each hypothesis of a beam): the nodes a step may combine ``(B, N, H)``
    (quantities, constants, then one slot per step's result), which of them exist ``(B, N)``, how often each was
    taken ``(B, N)``, the decoder's state ``(B, H)``, the last result ``(B, H)``, and the problem's tokens as the
    keys and values ``(B, heads, T, H / heads)`` of the two attentions that read them (``focus``: the state,
    ``read``: each new result), projected once per problem, with their mask ``(B, T)``."""

    nodes: torch.Tensor
    exists: torch.Tensor
    used: torch.Tensor
    state: torch.Tensor
    last: torch.Tensor
    focus_keys: torch.Tensor
    focus_values: torch.Tensor
    read_keys: torch.Tensor
    read_values: torch.Tensor
    token_mask: torch.Tensor

    def select(self, index: torch.Tensor) -> StepDecoderState:
        """The rows ``index`` (e.g. the parents of a beam's new hypotheses). The problem's tokens of a state of one
        problem stay one row, shared by every hypothesis (every index is that row): they are never copied."""
        return StepDecoderState(
            **{
                f.name: value if f.name in _TOKEN_FIELDS and value.shape[0] == 1 else value.index_select(0, index)
                for f in fields(self)
                for value in (getattr(self, f.name),)
            }
        )


_TOKEN_FIELDS = ("focus_keys", "focus_values", "read_keys", "read_values", "token_mask")


def _token_memory(attention: nn.MultiheadAttention, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and values ``(B, heads, T, H / heads)`` that ``attention`` reads from ``tokens`` ``(B, T, H)``: its
    own input projections, computed once per problem rather than once per step and hypothesis."""
    batch, length, hidden = tokens.shape
    heads = attention.num_heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    keys = nn.functional.linear(tokens, weight[hidden : 2 * hidden], bias[hidden : 2 * hidden])
    values = nn.functional.linear(tokens, weight[2 * hidden :], bias[2 * hidden :])

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, length, heads, hidden // heads).transpose(1, 2)

    return split(keys), split(values)


def _attend(attention: nn.MultiheadAttention, query, keys, values, token_mask) -> torch.Tensor:
    """``attention`` (an ``nn.MultiheadAttention``, its weights as trained) of one query per row ``(B, H)`` over
    the keys and values of :func:`_token_memory` (one row of them is shared by every query), the same function as
    ``attention(query[:, None], tokens, tokens, key_padding_mask=~token_mask)[0][:, 0]``."""
    batch, hidden = query.shape
    heads = attention.num_heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    q = nn.functional.linear(query, weight[:hidden], bias[:hidden]).view(batch, heads, 1, hidden // heads)
    keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
    mask = token_mask.expand(batch, -1)[:, None, None, :]
    dropout = attention.dropout if attention.training else 0.0
    out = nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=dropout)
    return attention.out_proj(out.reshape(batch, hidden))


class MyceliumStepDecoder(_MyceliumPreTrainedModel):
    """A step decoder: the whole program, one (operand, operand, operation) step at a time, or STOP.

    The problem is read once by the backbone. The **nodes** a step may combine are the problem's quantities (their
    tokens' mean, a value feature, their rank and, when known, whether a unit of operation text holds them), the
    constant vocabulary, and the results of the steps taken so far. At each step every ordered pair of nodes and
    every operation is scored at once, as one tensor ``(N, N, ops)`` (an additive pair scorer conditioned on the
    decoder's state; add and mul score each unordered pair once), together with STOP. The chosen step's result
    becomes a new node (made from its operands and operation, then reading the problem's tokens), and the state
    (a GRU cell) takes it in. The answer is the last result. Trained teacher-forced on the validated programs
    (``bindings``, n-ary operations as chains of binary steps) with one cross-entropy per step over all actions; the
    solver's beam (:mod:`mycelium_models.step_search`) executes every hypothesis exactly as it grows.
    """

    config_class = MyceliumStepDecoderConfig

    def __init__(self, config: MyceliumStepDecoderConfig):
        super().__init__(config)
        backbone_config = config.backbone_auto_config()
        self.backbone = AutoModel.from_config(backbone_config)
        hidden, size = backbone_config.hidden_size, config.state_size
        n_ops = len(config.op_names)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.kind_embed = nn.Embedding(len(NODE_KINDS), hidden)
        self.value_proj = nn.Linear(3, hidden)
        self.order_embed = nn.Embedding(config.max_quantities, hidden)
        self.region_embed = nn.Embedding(len(REGION_CODES), hidden)
        self.constant_embed = nn.Embedding(max(1, len(config.constants)), hidden)
        self.op_embed = nn.Embedding(n_ops, hidden)
        self.step_embed = nn.Embedding(config.max_steps + 1, hidden)
        self.used_embed = nn.Embedding(3, hidden)  # taken by 0, 1, 2+ steps so far
        self.combine = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        heads = next(h for h in (8, 6, 4, 3, 2, 1) if hidden % h == 0)
        self.read = nn.MultiheadAttention(hidden, heads, dropout=config.classifier_dropout, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.start = nn.Linear(hidden, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.focus = nn.MultiheadAttention(hidden, heads, dropout=config.classifier_dropout, batch_first=True)
        self.left = nn.Linear(hidden, size)
        self.right = nn.Linear(hidden, size)
        self.context = nn.Linear(4 * hidden, size)
        self.pair_out = nn.Linear(size, n_ops)
        self.stop = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module._mycelium_head = True
        for module in self.backbone.modules():
            module._mycelium_head = False
        self.post_init()

    # -- the pieces a search calls --------------------------------------------------------------------------------

    def encode_problem(self, input_ids, attention_mask, quantity_spans, quantity_values, quantity_regions, **kwargs):
        """The initial state of each problem (see :class:`StepDecoderState`); the node layout is quantities
        ``[0, Q)``, constants ``[Q, Q + C)``, results ``[Q + C, Q + C + max_steps)``."""
        hidden = self.dropout(self._hidden(input_ids, attention_mask, **kwargs))
        batch, n_q = hidden.shape[0], quantity_spans.shape[1]
        quantity, quantity_mask = _span_mean(hidden, quantity_spans)
        ranks = torch.arange(n_q, device=hidden.device).clamp(max=self.config.max_quantities - 1)
        quantity = (
            quantity
            + self.value_proj(quantity_values)
            + self.kind_embed.weight[0]
            + self.order_embed(ranks)
            + self.region_embed(quantity_regions.clamp(min=0))
        )
        quantity_mask = quantity_mask & (ranks < self.config.max_quantities)[None]
        n_c = len(self.config.constants)
        constant = (self.constant_embed.weight[:n_c] + self.kind_embed.weight[1]).expand(batch, -1, -1)
        slots = hidden.new_zeros(batch, self.config.max_steps, hidden.shape[-1])
        nodes = torch.cat([quantity, constant, slots], 1)
        exists = torch.cat(
            [
                quantity_mask,
                torch.ones(batch, n_c, dtype=torch.bool, device=hidden.device),
                torch.zeros(batch, self.config.max_steps, dtype=torch.bool, device=hidden.device),
            ],
            1,
        )
        mask = attention_mask.to(hidden.dtype)[..., None]
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        state = torch.tanh(self.start(pooled))
        used = torch.zeros(exists.shape, dtype=torch.long, device=hidden.device)
        return StepDecoderState(
            nodes,
            exists,
            used,
            state,
            torch.zeros_like(state),
            *_token_memory(self.focus, hidden),
            *_token_memory(self.read, hidden),
            attention_mask.bool(),
        )

    def action_scores(self, s: StepDecoderState, step: int) -> torch.Tensor:
        """Scores ``(B, N * N * ops + 1)`` of every action: step ``(a, b, op)`` at ``(a * N + b) * ops + op``, STOP
        last; ``NEG`` where not allowed (a node that does not exist, sub / div with ``a == b``, add / mul with
        ``a > b``, STOP before the first step, any step after the last)."""
        batch, n, _ = s.nodes.shape
        nodes = self.dropout(s.nodes + self.used_embed(s.used.clamp(max=2)))
        # what the step reads: its state, the last result, the problem text the state attends to, and the
        # quantities no step has taken yet (most numbers of a word problem are used once)
        focus = _attend(self.focus, s.state, s.focus_keys, s.focus_values, s.token_mask)
        n_q = n - self.config.max_steps - len(self.config.constants)
        unused = (s.exists & (s.used == 0)).to(nodes.dtype)
        unused[:, n_q:] = 0
        remaining = (nodes * unused[..., None]).sum(1) / unused.sum(1, keepdim=True).clamp(min=1)
        reading = torch.cat([s.state, s.last, focus, remaining], -1)
        context = self.context(reading)
        # only the nodes that can exist are paired: quantities, constants and the results of the steps taken so
        # far (every hypothesis at step t has taken t steps); the rest of the (N, N, ops) scores stay NEG
        n_ops, max_steps = len(self.config.op_names), self.config.max_steps
        scores = nodes.new_full((batch, n, n, n_ops), NEG)
        if step < max_steps:
            m = n - max_steps + step
            live, exists = nodes[:, :m], s.exists[:, :m]
            pair = torch.tanh(self.left(live)[:, :, None] + self.right(live)[:, None, :] + context[:, None, None])
            allowed = exists[:, :, None] & exists[:, None, :]
            distinct = ~torch.eye(m, dtype=torch.bool, device=nodes.device)
            upper = torch.triu(torch.ones(m, m, dtype=torch.bool, device=nodes.device))  # a <= b
            commutative = torch.tensor(
                [name in COMMUTATIVE_STEP_OPS for name in self.config.op_names], device=nodes.device
            )
            # add / mul once per pair, a == b included (x + x, x * x); sub / div in either order, never a == b
            op_allowed = allowed[..., None] & torch.where(commutative, upper[..., None], distinct[..., None])
            scores[:, :m, :m] = self.pair_out(pair).masked_fill(~op_allowed, NEG)
        scores = scores.reshape(batch, -1)
        stop = self.stop(reading)
        if step == 0:
            stop = torch.full_like(stop, NEG)
        return torch.cat([scores, stop], -1)

    def take(self, s: StepDecoderState, step: int, left, right, op) -> StepDecoderState:
        """The state after each problem takes step ``(left, right, op)`` (node indices ``(B,)``, op ids ``(B,)``):
        the result fills node slot ``Q + C + step``; ``left < 0`` leaves a problem as it was (it has stopped). After
        the last step (``step == max_steps``) only STOP is allowed, so there is no slot and nothing changes."""
        if step >= self.config.max_steps:
            return s
        batch, n, hidden = s.nodes.shape
        active = left >= 0
        rows = torch.arange(batch, device=s.nodes.device)
        a, b, o = left.clamp(min=0), right.clamp(min=0), op.clamp(min=0)
        x, y = s.nodes[rows, a], s.nodes[rows, b]
        result = self.combine(torch.cat([x, y, x * y, self.op_embed(o)], -1))
        read = _attend(self.read, result, s.read_keys, s.read_values, s.token_mask)
        result = self.norm(result + read) + self.kind_embed.weight[2] + self.step_embed.weight[step]
        slot = n - self.config.max_steps + step
        nodes, exists, used = s.nodes.clone(), s.exists.clone(), s.used.clone()
        keep = active[:, None]
        nodes[:, slot] = torch.where(keep, result, nodes[:, slot])
        exists[:, slot] = exists[:, slot] | active
        used[rows, a] += active.long()
        used[rows, b] += active.long()
        state = torch.where(keep, self.cell(result, s.state), s.state)
        last = torch.where(keep, result, s.last)
        memory = (s.focus_keys, s.focus_values, s.read_keys, s.read_values, s.token_mask)
        return StepDecoderState(nodes, exists, used, state, last, *memory)

    # -- training ------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        quantity_spans=None,
        quantity_values=None,
        quantity_regions=None,
        labels=None,
        **kwargs,
    ) -> StepDecoderOutput:
        """Teacher-forced scores of every step. ``labels`` ``(B, S, 3)``: per step the left and right operands as
        node codes (``kind * POINTER_CODE + index``, kinds in ``NODE_KINDS`` order) and the op id; ``-1`` rows are
        STOP (the end of the program), ``-100`` rows padding."""
        if quantity_regions is None:
            quantity_regions = torch.zeros(quantity_spans.shape[:2], dtype=torch.long, device=quantity_spans.device)
        if self.training and self.config.region_dropout > 0:
            hide = (
                torch.rand(quantity_regions.shape[0], 1, device=quantity_regions.device) < self.config.region_dropout
            )
            quantity_regions = quantity_regions.masked_fill(hide, 0)
        s = self.encode_problem(input_ids, attention_mask, quantity_spans, quantity_values, quantity_regions, **kwargs)
        n_q, n_c = quantity_spans.shape[1], len(self.config.constants)
        n, n_ops = s.nodes.shape[1], len(self.config.op_names)
        steps = self.config.max_steps + 1
        hits = torch.full((s.nodes.shape[0], steps), -1, dtype=torch.long, device=s.nodes.device)
        if labels is None:
            return StepDecoderOutput(loss=None, step_hits=hits)
        losses = []
        for t in range(min(labels.shape[1], steps)):
            row = labels[:, t]
            real = row[:, 0] != -100
            if not real.any():
                break
            stop = row[:, 0] == -1
            left = self.node_index(row[:, 0], n_q, n_c)
            right = self.node_index(row[:, 1], n_q, n_c)
            op = row[:, 2].clamp(min=0)
            commutative = torch.tensor(
                [name in COMMUTATIVE_STEP_OPS for name in self.config.op_names], device=op.device
            )[op]
            swap = commutative & (left > right)
            left, right = torch.where(swap, right, left), torch.where(swap, left, right)
            target = torch.where(stop, torch.full_like(op, n * n * n_ops), (left * n + right) * n_ops + op)
            target = torch.where(real & (left >= 0) & (right >= 0) | stop, target, torch.full_like(op, -100))
            scores = self.action_scores(s, t)
            losses.append(nn.functional.cross_entropy(scores, target, ignore_index=-100, reduction="sum"))
            counted = target != -100
            hits[:, t] = torch.where(counted, (scores.argmax(-1) == target).long(), hits[:, t])
            go = counted & ~stop
            s = self.take(s, t, torch.where(go, left, -1), right, op)
        total = (hits >= 0).sum().clamp(min=1)
        loss = torch.stack(losses).sum() / total if losses else None
        return StepDecoderOutput(loss=loss, step_hits=hits)

    @staticmethod
    def node_index(codes: torch.Tensor, n_q: int, n_c: int) -> torch.Tensor:
        """Node codes (``kind * POINTER_CODE + index``) -> node indices (quantities, constants, results); negative
        codes -> -1."""
        kind, index = codes // POINTER_CODE, codes % POINTER_CODE
        offset = torch.tensor([0, n_q, n_q + n_c], device=codes.device)[kind.clamp(0, 2)]
        return torch.where(codes < 0, torch.full_like(codes, -1), offset + index)


# For Hub pushes: save_pretrained writes an auto_map naming this file's classes and copies the file beside the weights.
# This only marks the classes; the process-wide registration with the Auto classes is done by `import mycelium_models`
# (see register_auto_classes there), so that this file, run as remote code, registers nothing beyond what
# transformers itself registers for the one model it loads.
MyceliumTaggerConfig.register_for_auto_class()
MyceliumBinderConfig.register_for_auto_class()
MyceliumBinder.register_for_auto_class("AutoModel")
MyceliumStepDecoderConfig.register_for_auto_class()
MyceliumStepDecoder.register_for_auto_class("AutoModel")
MyceliumOpClassifierConfig.register_for_auto_class()
MyceliumTagger.register_for_auto_class("AutoModelForTokenClassification")
MyceliumOpClassifier.register_for_auto_class("AutoModelForSequenceClassification")
