"""The two Mycelium students, each a configuration/modeling pair in the transformers mould.

``MyceliumTagger`` (token classification, IO labels) and ``MyceliumOpClassifier`` (sequence classification over
the operation labels) wrap any ``AutoModel`` backbone, encoder or decoder: the tagger labels every token of the
backbone's last hidden state; the classifier pools it (``mean`` over the attention mask for encoders, ``last`` token
for decoders). Both return ``loss`` when given ``labels``, so ``Trainer`` uses them as they are, and both register
with the Auto classes: after ``import mycelium_models``, ``AutoModelForTokenClassification.from_pretrained(dir)`` and
``AutoModelForSequenceClassification.from_pretrained(dir)`` load them with no ``trust_remote_code``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

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
        backbone_name (`str`, *optional*): where the backbone came from (an id or a path), for the record.
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
    supports_gradient_checkpointing = False

    def _init_weights(self, module):
        if isinstance(module, nn.Linear) and getattr(module, "_mycelium_head", False):
            module.weight.data.normal_(mean=0.0, std=0.02)
            module.bias.data.zero_()

    @classmethod
    def from_backbone(cls, name_or_path: str, **config_kwargs):
        """A new student around a pretrained backbone (weights loaded), with a freshly initialized head."""
        backbone = AutoModel.from_pretrained(name_or_path)
        config = cls.config_class(
            backbone_config=backbone.config.to_dict(), backbone_name=name_or_path, **config_kwargs
        )
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


AutoConfig.register(MyceliumTaggerConfig.model_type, MyceliumTaggerConfig)
AutoConfig.register(MyceliumOpClassifierConfig.model_type, MyceliumOpClassifierConfig)
AutoModelForTokenClassification.register(MyceliumTaggerConfig, MyceliumTagger)
AutoModelForSequenceClassification.register(MyceliumOpClassifierConfig, MyceliumOpClassifier)
# For Hub pushes: the saved config maps the Auto classes to this code.
MyceliumTaggerConfig.register_for_auto_class()
MyceliumOpClassifierConfig.register_for_auto_class()
MyceliumTagger.register_for_auto_class("AutoModelForTokenClassification")
MyceliumOpClassifier.register_for_auto_class("AutoModelForSequenceClassification")
