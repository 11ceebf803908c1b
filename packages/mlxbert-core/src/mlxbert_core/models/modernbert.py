"""ModernBERT (transformers' ``ModernBertModel``) and its masked-LM and classification models.

Pre-norm layers with rotary positions (rotate-half), alternating global and sliding-window
("local") attention with separate RoPE thetas, GeGLU MLP, no biases by default, a final norm.
Padded batches are computed padded (as transformers does without flash-attention); only real
tokens are meaningful. :func:`build` returns models in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..classifier_layout import ClassifierLayout
from ..encoder import EncoderBase, EncoderTaskModel
from ..outputs import EncoderOutput, MaskedLMOutput, SequenceClassifierOutput
from ..pooling import mean_pooling
from ..presets import ModelPreset
from ..registry import Architecture
from ._layers import (
    CompiledForward,
    LayerNorm,
    attention,
    config_fields,
    get_activation,
    ignored_heads_notes,
    key_padding_mask,
    merge_heads,
    require_positive,
    sliding_window_mask,
    task_builder,
    to_mx,
    token_mask,
    validate_inputs,
)
from ._packing import Packing
from .embedding import Embedding

GLOBAL, LOCAL = "full_attention", "sliding_attention"

#: The registry name of ModernBERT (its ``model_type``).
NAME = "modernbert"


@dataclass
class ModernBertModelArgs:
    """The fields of a ``ModernBertConfig`` the model uses (pre-v5 and 5.x spellings)."""

    vocab_size: int = 50368
    hidden_size: int = 768
    intermediate_size: int = 1152
    num_hidden_layers: int = 22
    num_attention_heads: int = 12
    hidden_activation: str = "gelu"
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    norm_bias: bool = False
    pad_token_id: int = 50283
    attention_bias: bool = False
    mlp_bias: bool = False
    local_attention: int = 128
    global_rope_theta: float = 160000.0
    local_rope_theta: float = 10000.0
    global_attn_every_n_layers: int = 3
    layer_types: list[str] = field(default_factory=list)
    embedding_dropout: float = 0.0
    mlp_dropout: float = 0.0
    attention_dropout: float = 0.0
    classifier_pooling: str = "cls"
    classifier_dropout: float = 0.0
    classifier_bias: bool = False
    classifier_activation: str = "gelu"
    decoder_bias: bool = True
    tie_word_embeddings: bool = True
    num_labels: int = 2

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModernBertModelArgs:
        values = config_fields(cls, config, exclude=("layer_types",))
        rope = config.get("rope_parameters")
        if isinstance(rope, dict):  # transformers 5.x: one entry per layer type
            for layer_type, key in ((GLOBAL, "global_rope_theta"), (LOCAL, "local_rope_theta")):
                params = rope.get(layer_type) or {}
                if params.get("rope_type", "default") != "default":
                    raise ValueError(
                        f"ModernBERT config: rope_type {params['rope_type']!r} for {layer_type} "
                        "is not supported (only 'default')"
                    )
                if params.get("rope_theta") is not None:
                    values[key] = float(params["rope_theta"])
        args = cls(**values)
        n_layers = args.num_hidden_layers
        if config.get("layer_types"):
            args.layer_types = list(config["layer_types"])
        elif isinstance(n_layers, int) and args.global_attn_every_n_layers > 0:
            every = args.global_attn_every_n_layers
            args.layer_types = [GLOBAL if i % every == 0 else LOCAL for i in range(n_layers)]
        args.validate()
        return args

    def validate(self) -> None:
        require_positive(
            "ModernBERT config",
            self,
            (
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "max_position_embeddings",
                "global_attn_every_n_layers",
            ),
        )
        if self.hidden_size % self.num_attention_heads or (
            (self.hidden_size // self.num_attention_heads) % 2
        ):
            raise ValueError(
                f"ModernBERT config: hidden_size {self.hidden_size} must split into "
                f"num_attention_heads {self.num_attention_heads} heads of even size (RoPE)"
            )
        if len(self.layer_types) != self.num_hidden_layers or not set(self.layer_types) <= {
            GLOBAL,
            LOCAL,
        }:
            raise ValueError(
                f"ModernBERT config: layer_types must list {self.num_hidden_layers} entries of "
                f"{GLOBAL!r} / {LOCAL!r}, got {self.layer_types!r}"
            )
        if LOCAL in self.layer_types and self.local_attention < 2:
            raise ValueError(
                f"ModernBERT config: local_attention must be >= 2, got {self.local_attention}"
            )
        if self.classifier_pooling not in ("cls", "mean"):
            raise ValueError(
                f"ModernBERT config: classifier_pooling must be 'cls' or 'mean', got "
                f"{self.classifier_pooling!r}"
            )
        get_activation(self.hidden_activation)
        get_activation(self.classifier_activation)


ModelArgs = ModernBertModelArgs


class ModernBertEmbeddings(nn.Module):
    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        self.tok_embeddings = Embedding(args.vocab_size, args.hidden_size)
        self.norm = LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.drop = nn.Dropout(args.embedding_dropout)

    def __call__(self, input_ids: mx.array) -> mx.array:
        return self.drop(self.norm(self.tok_embeddings(input_ids)))


class ModernBertAttention(nn.Module):
    def __init__(self, args: ModernBertModelArgs, layer_type: str):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.hidden_size // args.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.is_local = layer_type == LOCAL
        self.rope_theta = args.local_rope_theta if self.is_local else args.global_rope_theta
        self.Wqkv = nn.Linear(args.hidden_size, 3 * args.hidden_size, bias=args.attention_bias)
        self.Wo = nn.Linear(args.hidden_size, args.hidden_size, bias=args.attention_bias)
        self.out_drop = nn.Dropout(args.attention_dropout)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool,
        packing: Packing | None = None,
    ):
        qkv = self.Wqkv(x)
        # Wqkv rows are [q (all heads) | k | v]: read as [3, B, H, S, D].
        if packing is not None:  # packed rows: attention on the padded grid (mask is its own)
            qkv = packing.to_heads(qkv, self.num_heads, groups=3)
        else:
            b, s, _ = qkv.shape
            qkv = qkv.reshape(b, s, 3, self.num_heads, self.head_dim)
            qkv = qkv.transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = mx.fast.rope(
            q, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=0
        )
        k = mx.fast.rope(
            k, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=0
        )
        out, probs = attention(
            q, k, v, scale=self.scale, mask=mask, output_attentions=output_attentions
        )
        out = packing.from_heads(out) if packing is not None else merge_heads(out)
        return self.out_drop(self.Wo(out)), probs


class ModernBertMLP(nn.Module):
    """GeGLU: Wi's output is [input | gate]; Wo(act(input) * gate)."""

    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        self.Wi = nn.Linear(args.hidden_size, 2 * args.intermediate_size, bias=args.mlp_bias)
        self.Wo = nn.Linear(args.intermediate_size, args.hidden_size, bias=args.mlp_bias)
        self.drop = nn.Dropout(args.mlp_dropout)
        self._act = get_activation(args.hidden_activation)

    def __call__(self, x: mx.array) -> mx.array:
        inputs, gate = mx.split(self.Wi(x), 2, axis=-1)
        return self.Wo(self.drop(self._act(inputs) * gate))


class ModernBertEncoderLayer(nn.Module):
    """Pre-norm block. Layer 0 has no ``attn_norm``: the embedding norm already precedes it."""

    def __init__(self, args: ModernBertModelArgs, layer_id: int):
        super().__init__()
        self.layer_type = args.layer_types[layer_id]
        if layer_id != 0:
            self.attn_norm = LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.attn = ModernBertAttention(args, self.layer_type)
        self.mlp_norm = LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.mlp = ModernBertMLP(args)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool = False,
        packing: Packing | None = None,
    ):
        """``x`` is ``[batch, width, hidden]``, or packed ``[rows, hidden]`` with its
        ``packing`` (then ``mask`` is over the packing's attention grid)."""
        h = self.attn_norm(x) if "attn_norm" in self else x
        attn_out, probs = self.attn(h, mask, output_attentions, packing)
        x = x + attn_out
        return x + self.mlp(self.mlp_norm(x)), probs


class ModernBertModel(EncoderBase, nn.Module, CompiledForward):
    """The bare ModernBERT encoder (``ModernBertModel``).

    ``hidden_states`` follows transformers 5.x: (embedding output, output of layers
    0 .. L-2, ``last_hidden_state``), i.e. the last entry is the final-normed output. The raw
    output of the last layer is available from :meth:`encode_layers`. No pooler. An
    :class:`~mlxbert_core.Encoder`.
    """

    architecture = NAME

    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        self.config = args
        self.embeddings = ModernBertEmbeddings(args)
        # Stored as the child "layers" (its checkpoint prefix) and read through the property
        # below, which Encoder's isinstance check can see (it looks attributes up statically
        # from Python 3.12 on, and module children are dict entries, not attributes).
        self["layers"] = [ModernBertEncoderLayer(args, i) for i in range(args.num_hidden_layers)]
        self.final_norm = LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)

    @property
    def layers(self) -> list[ModernBertEncoderLayer]:
        return self["layers"]

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    def encode_layers(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> tuple[mx.array, list[mx.array] | None, list[mx.array] | None]:
        """Embeddings and every layer, without ``final_norm``: (raw last-layer output,
        [embedding output, layer outputs...] or None, attentions or None)."""
        input_ids, attention_mask = self._validated(input_ids, attention_mask)
        return self._encode_layers(
            input_ids, attention_mask, output_hidden_states, output_attentions
        )

    def _validated(
        self, input_ids: Any, attention_mask: Any, check_device_values: bool = True
    ) -> tuple[mx.array, mx.array | None]:
        """The inputs checked against the config, as MLX arrays (``validate_inputs``; a mask
        without padding comes back as None)."""
        input_ids, attention_mask, _ = validate_inputs(
            input_ids,
            attention_mask,
            vocab_size=self.config.vocab_size,
            max_positions=self.max_positions,
            max_positions_name="max_position_embeddings",
            drop_full_mask=True,
            check_device_values=check_device_values,
        )
        return input_ids, attention_mask

    def _masks(self, attention_mask: mx.array | None, seq_len: int) -> dict[str, mx.array | None]:
        args = self.config
        tokens = token_mask(attention_mask)
        masks = {GLOBAL: key_padding_mask(tokens)}
        half_window = args.local_attention // 2
        if seq_len - 1 <= half_window:  # the window spans the whole sequence
            masks[LOCAL] = masks[GLOBAL]
        elif LOCAL in args.layer_types:
            masks[LOCAL] = sliding_window_mask(tokens, seq_len, half_window)
        return masks

    def _encode_layers(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None,
        output_hidden_states: bool,
        output_attentions: bool,
    ) -> tuple[mx.array, list[mx.array] | None, list[mx.array] | None]:
        masks = self._masks(attention_mask, input_ids.shape[1])
        x = self.embeddings(input_ids)
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            x, probs = layer(x, masks[layer.layer_type], output_attentions)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(probs)
        return x, hidden_states, attentions

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        """``token_type_ids`` is accepted for a uniform interface and ignored (ModernBERT has
        no segment embeddings)."""
        if self._use_compiled(not (output_hidden_states or output_attentions)):
            input_ids, attention_mask = self._validated(
                input_ids, attention_mask, check_device_values=self._check_mx_inputs
            )
            if self._use_packed(True, attention_mask):
                (x,) = self._packed_call(self._packed_forward, input_ids, attention_mask)
            else:
                (x,) = self._compiled_call(self._plain_forward, input_ids, attention_mask)
            return EncoderOutput(last_hidden_state=x)
        x, hidden_states, attentions = self.encode_layers(
            input_ids,
            attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        x = self.final_norm(x)
        if hidden_states is not None:
            hidden_states[-1] = x  # transformers 5.x convention
        return EncoderOutput(
            last_hidden_state=x,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )

    def _plain_forward(
        self, input_ids: mx.array, attention_mask: mx.array | None
    ) -> tuple[mx.array]:
        """(last_hidden_state,): the traced body of the compiled forward."""
        x, _, _ = self._encode_layers(input_ids, attention_mask, False, False)
        return (self.final_norm(x),)

    def _packed_forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[mx.array]:
        """(last_hidden_state,) of the real tokens only (see :mod:`._packing`); the padding's
        rows are zero. The global and sliding-window masks are built on the attention grid,
        whose columns are the tokens' positions."""
        packing = Packing(attention_mask)
        masks = self._masks(packing.grid_tokens, packing.span)
        x = self.embeddings(packing.pack(input_ids))
        for layer in self.layers:
            x, _ = layer(x, masks[layer.layer_type], packing=packing)
        return (packing.unpack(self.final_norm(x)),)


class ModernBertPredictionHead(nn.Module):
    """norm(act(dense(x))), shared by the MLM and classification models."""

    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size, bias=args.classifier_bias)
        self.norm = LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self._act = get_activation(args.classifier_activation)

    def __call__(self, x: mx.array) -> mx.array:
        return self.norm(self._act(self.dense(x)))


class _TiedDecoder(nn.Module):
    """The MLM decoder whose weight is the token embedding; only its bias is a parameter."""

    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        if args.decoder_bias:
            self.bias = mx.zeros((args.vocab_size,))

    def __call__(self, x: mx.array, embedding: nn.Embedding) -> mx.array:
        logits = embedding.as_linear(x)
        return logits + self.bias if "bias" in self else logits


class ModernBertForMaskedLM(EncoderTaskModel):
    """``ModernBertForMaskedLM``: logits = decoder(head(last_hidden_state)), decoder tied to
    the token embedding unless ``tie_word_embeddings`` is false."""

    encoder_attr = "model"

    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        self.config = args
        self.model = ModernBertModel(args)
        self.head = ModernBertPredictionHead(args)
        if args.tie_word_embeddings:
            self.decoder = _TiedDecoder(args)
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size, bias=args.decoder_bias)

    def task_output(self, out: EncoderOutput, attention_mask: mx.array | None) -> MaskedLMOutput:
        h = self.head(out.last_hidden_state)
        if isinstance(self.decoder, _TiedDecoder):
            logits = self.decoder(h, self.model.embeddings.tok_embeddings)
        else:
            logits = self.decoder(h)
        return MaskedLMOutput(logits, out.hidden_states, out.attentions)


class ModernBertForSequenceClassification(EncoderTaskModel):
    """``ModernBertForSequenceClassification``: pool (``classifier_pooling`` cls | mean over
    real tokens), then head, dropout and ``classifier`` (which always has a bias)."""

    encoder_attr = "model"

    def __init__(self, args: ModernBertModelArgs):
        super().__init__()
        self.config = args
        self.num_labels = args.num_labels
        self.model = ModernBertModel(args)
        self.head = ModernBertPredictionHead(args)
        self.drop = nn.Dropout(args.classifier_dropout)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def task_output(
        self, out: EncoderOutput, attention_mask: mx.array | None
    ) -> SequenceClassifierOutput:
        h = out.last_hidden_state
        if self.config.classifier_pooling == "mean":
            mask = (
                None
                if attention_mask is None
                else token_mask(to_mx(attention_mask, "attention_mask"))
            )
            pooled = mean_pooling(h, mask)
        else:
            pooled = h[:, 0]
        pooled = self.head(pooled)
        logits = self.classifier(self.drop(pooled))
        return SequenceClassifierOutput(logits, pooled, out.hidden_states, out.attentions)


# --------------------------------------------------------------------------------------------
# Checkpoint keys
# --------------------------------------------------------------------------------------------

_BACKBONE = ("embeddings.", "layers.", "final_norm.")


def sanitize(
    weights: dict[str, mx.array], model: nn.Module
) -> tuple[dict[str, mx.array], list[str]]:
    """Map ModernBERT checkpoint keys (bare ``ModernBertModel`` or ``model.``-prefixed task
    models) onto ``model``'s parameter names."""
    notes: list[str] = []
    bare = isinstance(model, ModernBertModel)
    keep_mlm = isinstance(model, ModernBertForMaskedLM)
    keep_cls = isinstance(model, ModernBertForSequenceClassification)
    tied = model.config.tie_word_embeddings
    out: dict[str, mx.array] = {}
    dropped_heads: list[str] = []
    for key, value in weights.items():
        inner = key[len("model.") :] if key.startswith("model.") else key
        if inner.startswith(_BACKBONE):
            out[inner if bare else "model." + inner] = value
        elif key.startswith("head."):
            if keep_mlm or keep_cls:
                out[key] = value
            else:
                dropped_heads.append(key)
        elif key.startswith("decoder."):
            if not keep_mlm:
                dropped_heads.append(key)
            elif key == "decoder.weight" and tied:
                notes.append("dropped decoder.weight: tied to embeddings.tok_embeddings")
            else:
                out[key] = value
        elif key.startswith("classifier."):
            if keep_cls:
                out[key] = value
            else:
                dropped_heads.append(key)
        else:
            out[key] = value  # not understood: the strict check will report it
    notes += ignored_heads_notes(dropped_heads)
    return out, notes


build = task_builder(
    ModernBertModelArgs,
    encoder=ModernBertModel,
    masked_lm=ModernBertForMaskedLM,
    sequence_classification=ModernBertForSequenceClassification,
)


def _modernbert(size: str, params: str, learning_rate: float) -> ModelPreset:
    """A ModernBERT checkpoint of Answer.AI (8192 tokens)."""
    name = f"modernbert-{size}"
    description = f"ModernBERT-{size} ({params}), 8k context"
    return ModelPreset(
        name, f"answerdotai/ModernBERT-{size}", NAME, 8192, learning_rate, description
    )


PRESETS = (_modernbert("base", "149M", 5e-5), _modernbert("large", "395M", 3e-5))


def _classifier_body(config: Mapping[str, Any]) -> dict[str, Any]:
    act = str(config.get("classifier_activation") or "gelu")
    return {
        "activation": act,
        "dense_bias": bool(config.get("classifier_bias", False)),
        "norm_eps": float(config.get("norm_eps") or 1e-5),
        "norm_bias": bool(config.get("norm_bias", False)),
    }


#: transformers' ``ModernBertForSequenceClassification``:
#: classifier(drop(norm(act(dense(pooled))))), pooled by ``classifier_pooling`` (cls / mean).
CLASSIFIER = ClassifierLayout(
    hf_class="ModernBertForSequenceClassification",
    encoder_prefix="model.",
    body="dense_act_norm",
    body_keys={
        "dense.weight": "head.dense.weight",
        "dense.bias": "head.dense.bias",
        "norm.weight": "head.norm.weight",
        "norm.bias": "head.norm.bias",
    },
    pooling=lambda config: str(config.get("classifier_pooling") or "cls"),
    dropout_keys=("classifier_dropout",),
    dropout_default=0.0,
    body_options=_classifier_body,
    extra={"pooling_key": "classifier_pooling", "poolings": ("cls", "mean")},
)

ARCHITECTURE = Architecture(
    name=NAME,
    build=build,
    sanitize=sanitize,
    description="ModernBERT: pre-norm, RoPE, alternating global / sliding-window attention, GeGLU",
    classifier=CLASSIFIER,
    presets=PRESETS,
)
