"""NeoBERT (the hub ``NeoBERT`` remote code) and its masked-LM and classification models.

Pre-RMSNorm layers, per-head packed qkv, rotary positions on adjacent pairs (complex-number
style, theta 10000), packed SwiGLU, a final RMSNorm, no biases in the encoder and no token
types. :func:`build` returns models in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..classifier_layout import ClassifierLayout
from ..encoder import EncoderBase, EncoderTaskModel
from ..outputs import EncoderOutput, MaskedLMOutput, SequenceClassifierOutput
from ..presets import ModelPreset
from ..registry import Architecture
from ._layers import (
    CompiledForward,
    RMSNorm,
    attention,
    config_fields,
    ignored_heads_notes,
    key_padding_mask,
    merge_heads,
    require_positive,
    silu,
    task_builder,
    token_mask,
    validate_inputs,
)
from ._packing import Packing
from .embedding import Embedding

#: The registry name of NeoBERT (its ``model_type``).
NAME = "neobert"


@dataclass
class NeoBertModelArgs:
    """The fields of a hub NeoBERT ``config.json`` the model uses."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 28
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    norm_eps: float = 1e-6
    max_length: int = 4096
    pad_token_id: int = 0
    rope_theta: float = 10000.0
    classifier_dropout: float = 0.1
    num_labels: int = 2

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> NeoBertModelArgs:
        args = cls(**config_fields(cls, config))
        args.validate()
        if config.get("ngpt"):
            raise ValueError("NeoBERT config: the normalized-GPT variant (ngpt) is not supported")
        act = str(config.get("hidden_act", "swiglu")).lower()
        if act != "swiglu":
            raise ValueError(f"NeoBERT config: hidden_act {act!r} unsupported (only 'swiglu')")
        dim_head = config.get("dim_head")
        if dim_head is not None and dim_head != args.head_dim:
            raise ValueError(
                f"NeoBERT config: dim_head {dim_head} != hidden_size / num_attention_heads "
                f"({args.head_dim})"
            )
        return args

    def validate(self) -> None:
        require_positive(
            "NeoBERT config",
            self,
            (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "max_length",
            ),
        )
        if self.hidden_size % self.num_attention_heads or self.head_dim % 2:
            raise ValueError(
                f"NeoBERT config: hidden_size {self.hidden_size} must split into "
                f"num_attention_heads {self.num_attention_heads} heads of even size (RoPE)"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def swiglu_size(self) -> int:
        """The packed SwiGLU hidden size: 2/3 of intermediate_size, rounded up to 8."""
        return 8 * ((int(2 * self.intermediate_size / 3) + 7) // 8)


ModelArgs = NeoBertModelArgs


class SwiGLU(nn.Module):
    """w3(SiLU(gate) * value), gate and value packed in w12 (gate first)."""

    def __init__(self, args: NeoBertModelArgs):
        super().__init__()
        self.w12 = nn.Linear(args.hidden_size, 2 * args.swiglu_size, bias=False)
        self.w3 = nn.Linear(args.swiglu_size, args.hidden_size, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        gate, value = mx.split(self.w12(x), 2, axis=-1)
        return self.w3(silu(gate) * value)


class EncoderBlock(nn.Module):
    """x += wo(attn(RMSNorm(x))); x += ffn(RMSNorm(x))."""

    def __init__(self, args: NeoBertModelArgs):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.head_dim
        self.scale = args.head_dim**-0.5
        self.rope_theta = args.rope_theta
        self.qkv = nn.Linear(args.hidden_size, 3 * args.hidden_size, bias=False)
        self.wo = nn.Linear(args.hidden_size, args.hidden_size, bias=False)
        self.ffn = SwiGLU(args)
        self.attention_norm = RMSNorm(args.hidden_size, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.hidden_size, eps=args.norm_eps)

    def _attend(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool,
        packing: Packing | None = None,
    ):
        qkv = self.qkv(x)
        d = self.head_dim
        # Per-head layout: each head's 3*D outputs are [q | k | v]; read as [B, H, S, 3D].
        if packing is not None:  # packed rows: attention on the padded grid
            qkv, mask = packing.to_heads(qkv, self.num_heads), packing.key_mask
        else:
            b, s, _ = qkv.shape
            qkv = qkv.reshape(b, s, self.num_heads, 3 * d).transpose(0, 2, 1, 3)
        q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
        q = mx.fast.rope(q, d, traditional=True, base=self.rope_theta, scale=1.0, offset=0)
        k = mx.fast.rope(k, d, traditional=True, base=self.rope_theta, scale=1.0, offset=0)
        out, probs = attention(
            q, k, v, scale=self.scale, mask=mask, output_attentions=output_attentions
        )
        out = packing.from_heads(out) if packing is not None else merge_heads(out)
        return self.wo(out), probs

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | None,
        output_attentions: bool = False,
        packing: Packing | None = None,
    ):
        """``x`` is ``[batch, width, hidden]``, or packed ``[rows, hidden]`` with its
        ``packing`` (then ``mask`` is unused; the grid's columns are the RoPE positions)."""
        attn_out, probs = self._attend(self.attention_norm(x), mask, output_attentions, packing)
        x = x + attn_out
        return x + self.ffn(self.ffn_norm(x)), probs


class NeoBERT(EncoderBase, nn.Module, CompiledForward):
    """The bare NeoBERT encoder.

    ``hidden_states`` follows the hub NeoBERT convention, which differs from BERT's: one
    entry per layer, each the layer output *before* the final ``layer_norm``, and no
    embedding entry (the embedding lookup is ``model.encoder(input_ids)``). No pooler.
    ``output_attentions`` returns correctly masked softmax probabilities (the hub code's
    attentions path multiplies scores by the mask instead, so it has no reference here). An
    :class:`~mlxbert_core.Encoder`.
    """

    architecture = NAME

    def __init__(self, args: NeoBertModelArgs):
        super().__init__()
        self.config = args
        self.encoder = Embedding(args.vocab_size, args.hidden_size)
        self.transformer_encoder = [EncoderBlock(args) for _ in range(args.num_hidden_layers)]
        self.layer_norm = RMSNorm(args.hidden_size, eps=args.norm_eps)

    @property
    def max_positions(self) -> int:
        return self.config.max_length

    @property
    def layers(self) -> list[EncoderBlock]:
        return self.transformer_encoder

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        """``token_type_ids`` is accepted for a uniform interface and ignored."""
        args = self.config
        plain = not (output_hidden_states or output_attentions)
        input_ids, attention_mask, _ = validate_inputs(
            input_ids,
            attention_mask,
            vocab_size=args.vocab_size,
            max_positions=self.max_positions,
            max_positions_name="max_length",
            drop_full_mask=True,
            check_device_values=self._check_device_values(plain),
        )
        if self._use_packed(plain, attention_mask):
            (x,) = self._packed_call(self._packed_forward, input_ids, attention_mask)
            return EncoderOutput(last_hidden_state=x)
        if self._use_compiled(plain):
            (x,) = self._compiled_call(self._plain_forward, input_ids, attention_mask)
            return EncoderOutput(last_hidden_state=x)
        mask = key_padding_mask(token_mask(attention_mask))
        x = self.encoder(input_ids)
        hidden_states = [] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            x, probs = layer(x, mask, output_attentions)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(probs)
        return EncoderOutput(
            last_hidden_state=self.layer_norm(x),
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )

    def _plain_forward(
        self, input_ids: mx.array, attention_mask: mx.array | None
    ) -> tuple[mx.array]:
        """(last_hidden_state,): the traced body of the compiled forward."""
        mask = key_padding_mask(token_mask(attention_mask))
        x = self.encoder(input_ids)
        for layer in self.layers:
            x, _ = layer(x, mask)
        return (self.layer_norm(x),)

    def _packed_forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[mx.array]:
        """(last_hidden_state,) of the real tokens only (see :mod:`._packing`); the padding's
        rows are zero."""
        packing = Packing(attention_mask)
        x = self.encoder(packing.pack(input_ids))
        for layer in self.layers:
            x, _ = layer(x, None, packing=packing)
        return (packing.unpack(self.layer_norm(x)),)


class NeoBERTLMHead(EncoderTaskModel):
    """``NeoBERTLMHead``: logits = decoder(last_hidden_state), decoder untied with a bias."""

    encoder_attr = "model"

    def __init__(self, args: NeoBertModelArgs):
        super().__init__()
        self.config = args
        self.model = NeoBERT(args)
        self.decoder = nn.Linear(args.hidden_size, args.vocab_size)

    def task_output(self, out: EncoderOutput, attention_mask: mx.array | None) -> MaskedLMOutput:
        logits = self.decoder(out.last_hidden_state)
        return MaskedLMOutput(logits, out.hidden_states, out.attentions)


class NeoBERTForSequenceClassification(EncoderTaskModel):
    """logits = classifier(dropout(tanh(dense(dropout(last_hidden_state[:, 0])))))."""

    encoder_attr = "model"

    def __init__(self, args: NeoBertModelArgs):
        super().__init__()
        self.config = args
        self.num_labels = args.num_labels
        self.model = NeoBERT(args)
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.dropout = nn.Dropout(args.classifier_dropout)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def task_output(
        self, out: EncoderOutput, attention_mask: mx.array | None
    ) -> SequenceClassifierOutput:
        pooled = mx.tanh(self.dense(self.dropout(out.last_hidden_state[:, 0])))
        logits = self.classifier(self.dropout(pooled))
        return SequenceClassifierOutput(logits, pooled, out.hidden_states, out.attentions)


# Aliases in the naming style of the other architectures.
NeoBertModel = NeoBERT
NeoBertForMaskedLM = NeoBERTLMHead
NeoBertForSequenceClassification = NeoBERTForSequenceClassification


# --------------------------------------------------------------------------------------------
# Checkpoint keys
# --------------------------------------------------------------------------------------------

_BACKBONE = ("encoder.", "transformer_encoder.", "layer_norm.")
_MLM_HEAD = ("decoder.",)
_CLS_HEAD = ("dense.", "classifier.")


def sanitize(
    weights: dict[str, mx.array], model: nn.Module
) -> tuple[dict[str, mx.array], list[str]]:
    """Map NeoBERT checkpoint keys (bare ``NeoBERT``, with or without ``model.``, or the
    ``NeoBERTLMHead`` / ``NeoBERTForSequenceClassification`` layouts) onto ``model``."""
    bare = isinstance(model, NeoBERT)
    keep = _MLM_HEAD if isinstance(model, NeoBERTLMHead) else ()
    if isinstance(model, NeoBERTForSequenceClassification):
        keep = _CLS_HEAD
    notes: list[str] = []
    out: dict[str, mx.array] = {}
    dropped_heads: list[str] = []
    for key, value in weights.items():
        inner = key[len("model.") :] if key.startswith("model.") else key
        if inner.startswith(_BACKBONE):
            out[inner if bare else "model." + inner] = value
        elif key.startswith(_MLM_HEAD + _CLS_HEAD):
            if key.startswith(keep):
                out[key] = value
            else:
                dropped_heads.append(key)
        else:
            out[key] = value  # not understood: the strict check will report it
    notes += ignored_heads_notes(dropped_heads)
    return out, notes


build = task_builder(
    NeoBertModelArgs,
    encoder=NeoBERT,
    masked_lm=NeoBERTLMHead,
    sequence_classification=NeoBERTForSequenceClassification,
)


PRESETS = (
    ModelPreset(
        "neobert", "chandar-lab/NeoBERT", "neobert", 4096, 2e-5, "NeoBERT (250M), 4k context"
    ),
)

#: The hub's ``NeoBERTForSequenceClassification``:
#: classifier(dropout(tanh(dense(dropout(h[:, 0]))))).
CLASSIFIER = ClassifierLayout(
    hf_class="NeoBERTForSequenceClassification",
    encoder_prefix="model.",
    body="dense_tanh",
    body_keys={"dense.weight": "dense.weight", "dense.bias": "dense.bias"},
    dropout_keys=("classifier_dropout",),
    dropout_on_pooled=True,
)

ARCHITECTURE = Architecture(
    name=NAME,
    build=build,
    sanitize=sanitize,
    description="NeoBERT: pre-RMSNorm, RoPE (adjacent pairs), per-head qkv, SwiGLU",
    classifier=CLASSIFIER,
    presets=PRESETS,
)
