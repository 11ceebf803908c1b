"""M2-BERT modules: embeddings, encoder, pooler and the task models.

Parameter names equal the reference state-dict names (``embeddings.*``, ``encoder.layer.{i}.*``,
``pooler.*`` under ``bert.``; ``classifier.*``; ``cls.predictions.*``), buffers included
(``position_ids``, ``pos_emb.t``, ``modulation.deltas``, kept frozen), so a checkpoint loads by
name after :func:`mlxbert_m2.loading.sanitize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlxbert_core.encoder import BertLayout, EncoderBase, EncoderTaskModel
from mlxbert_core.models import Embedding
from mlxbert_core.outputs import EncoderOutput, MaskedLMOutput, SequenceClassifierOutput
from mlxbert_core.pooling import mean_pooling

from .config import M2BertConfig
from .mixer import MonarchMixerSequenceMixing
from .mlp import GatedLinearUnitMLP

#: The registry name of M2-BERT (its configs say ``model_type: bert``).
NAME = "m2_bert"
CLS_TOKEN_ID = 101  # bert-base-uncased [CLS], what sequence-token planting writes
PLANTING_STRIDE = 128


def planting_positions(length: int) -> list[int]:
    """Positions ``128 * r`` for ``r = 1 .. length // 128 - 1`` (reference planting)."""
    return list(
        range(PLANTING_STRIDE, PLANTING_STRIDE * (length // PLANTING_STRIDE), PLANTING_STRIDE)
    )


@dataclass
class M2SequenceClassifierOutput(SequenceClassifierOutput):
    """Classifier output plus the encoder's sequence output and the sentence embedding."""

    last_hidden_state: mx.array | None = None
    sentence_embedding: mx.array | None = None


class M2Embeddings(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        h = config.hidden_size
        self.use_positional_encodings = config.use_positional_encodings
        self.word_embeddings = Embedding(config.vocab_size, h)
        self.token_type_embeddings = Embedding(config.type_vocab_size, h)
        if config.use_positional_encodings:
            self.position_embeddings = Embedding(config.max_position_embeddings, h)
            self.position_ids = mx.arange(config.max_position_embeddings)[None]
            self.freeze(recurse=False, keys=["position_ids"])
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def __call__(self, input_ids: mx.array, token_type_ids: mx.array) -> mx.array:
        e = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        if self.use_positional_encodings:
            e = e + self.position_embeddings(self.position_ids[:, : input_ids.shape[1]])
        return self.dropout(self.LayerNorm(e))


class M2Layer(nn.Module):
    """``a = mixer(x); x_next = LayerNorm(GLU(a) + a)`` (no skip from x around the mixer)."""

    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.attention = MonarchMixerSequenceMixing(config)
        self.mlp = GatedLinearUnitMLP(config)

    def __call__(self, x: mx.array) -> mx.array:
        return self.mlp(self.attention(x))


class M2Encoder(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.layer = [M2Layer(config) for _ in range(config.num_hidden_layers)]


class M2Pooler(nn.Module):
    """``tanh(dense(v))`` with v the [CLS] state, the masked mean (``pool_all``) or the
    sequence-token-planting average.

    Returns ``(pooled, sequence_output)``: with planting the reference's pooler overwrites
    position 0 of the sequence output in place (a side effect its callers see), reproduced here.
    """

    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.pool_all = config.pool_all
        self.planting = config.sequence_token_planting

    def __call__(self, x: mx.array, mask: mx.array) -> tuple[mx.array, mx.array]:
        if self.pool_all:
            v = mean_pooling(x, mask)
        elif self.planting:
            positions = planting_positions(x.shape[1])
            if not positions:
                raise ValueError(
                    f"sequence_token_planting needs inputs of at least {2 * PLANTING_STRIDE} "
                    f"tokens (planted [CLS] tokens sit at positions 128, 256, ...), got "
                    f"{x.shape[1]}; the reference divides by a zero count here and returns NaN. "
                    "Pad inputs to the model's max length or set sequence_token_planting=false."
                )
            idx = mx.array(positions)
            m = mask[:, idx].astype(x.dtype)  # (B, P)
            # Sum over the whole batch: the reference adds every unmasked planted state to
            # every row of the accumulator and keeps one global count.
            planted = (x[:, idx] * m[..., None]).sum(axis=(0, 1))
            acc = x[:, 0] + planted
            v = acc / m.sum()
            x = mx.concatenate([acc[:, None], x[:, 1:]], axis=1)
        else:
            v = x[:, 0]
        return mx.tanh(self.dense(v)), x


class M2BertModel(EncoderBase, BertLayout, nn.Module):
    """The M2-BERT encoder (reference ``BertModel``); returns an :class:`EncoderOutput`.

    The attention mask is used only for pooling: the long convolutions see padding tokens, as
    in the reference, so pad inputs the way the checkpoint was trained (the reference pads
    every input to ``max_position_embeddings``). ``hidden_states`` holds the embedding output
    then each layer's output; there are no attentions (``attentions`` is None). An
    :class:`mlxbert_core.Encoder`.
    """

    architecture = NAME

    def __init__(self, config: M2BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = M2Embeddings(config)
        self.encoder = M2Encoder(config)
        if add_pooling_layer:
            self.pooler = M2Pooler(config)

    @property
    def max_positions(self) -> int:
        return self.config.max_length

    @property
    def input_length(self) -> int:
        """Every input padded to ``max_positions``, as the reference does (the long
        convolutions see the padding)."""
        return self.max_positions

    def _default_config_dict(self) -> dict:
        return self.config.to_dict()

    def _check_inputs(self, input_ids: mx.array) -> None:
        if input_ids.ndim != 2:
            raise ValueError(
                f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}"
            )
        length, limit = input_ids.shape[1], self.max_positions
        if length > limit:
            raise ValueError(
                f"input length {length} exceeds this M2-BERT model's maximum of {limit} tokens "
                "(long_conv_l_max / max_position_embeddings); truncate the inputs or load a "
                "longer-context checkpoint"
            )

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        self._check_inputs(input_ids)
        if token_type_ids is None:
            token_type_ids = mx.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = mx.ones(input_ids.shape, dtype=mx.int32)
        x = self.embeddings(input_ids, token_type_ids)
        hidden = [x]
        for layer in self.layers:
            x = layer(x)
            hidden.append(x)
        pooled = None
        if self.has_pooler:
            pooled, x = self.pooler(x, attention_mask)
            hidden[-1] = x
        return EncoderOutput(
            last_hidden_state=x,
            pooler_output=pooled,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=None,
        )


def plant_sequence_tokens(input_ids: mx.array) -> mx.array:
    """Return a copy of ``input_ids`` with [CLS] at positions 128, 256, ... (never in place)."""
    positions = planting_positions(input_ids.shape[1])
    column = np.zeros(input_ids.shape[1], dtype=bool)
    column[positions] = True
    return mx.where(mx.array(column), mx.array(CLS_TOKEN_ID, input_ids.dtype), input_ids)


class M2BertForSequenceClassification(EncoderTaskModel):
    """Encoder + dropout + linear classifier (reference ``BertForSequenceClassification``).

    ``num_labels == 1`` is regression. The output also carries ``last_hidden_state`` and
    ``sentence_embedding`` (the pooled output, or the [CLS] state with ``use_cls_token``;
    L2-normalised with ``use_normalized_embeddings``), which the retrieval models return.
    """

    def __init__(self, config: M2BertConfig, num_labels: int | None = None):
        super().__init__()
        self.config = config
        self.num_labels = config.num_labels if num_labels is None else num_labels
        self.bert = M2BertModel(config)
        p = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if p is None else p)
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        **output_flags: bool,
    ) -> M2SequenceClassifierOutput:
        if self.config.sequence_token_planting:
            input_ids = plant_sequence_tokens(input_ids)
        return super().__call__(input_ids, attention_mask, token_type_ids, **output_flags)

    def task_output(
        self, out: EncoderOutput, attention_mask: mx.array | None
    ) -> M2SequenceClassifierOutput:
        x = out.last_hidden_state
        features = x[:, 0] if self.config.use_cls_token else out.pooler_output
        logits = self.classifier(self.dropout(features))
        embedding = features
        if self.config.use_normalized_embeddings:
            embedding = features / mx.linalg.norm(features, axis=-1, keepdims=True)
        return M2SequenceClassifierOutput(
            logits=logits,
            pooler_output=out.pooler_output,
            hidden_states=out.hidden_states,
            attentions=None,
            last_hidden_state=x,
            sentence_embedding=embedding,
        )


class _PredictionHeadTransform(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def __call__(self, x: mx.array) -> mx.array:
        return self.LayerNorm(nn.gelu(self.dense(x)))


class _Decoder(nn.Module):
    """Only the bias: the decoder weight is tied to the word embeddings."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = mx.zeros((vocab_size,))


class _LMPredictionHead(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.transform = _PredictionHeadTransform(config)
        self.decoder = _Decoder(config.vocab_size)


class _OnlyMLMHead(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.predictions = _LMPredictionHead(config)


class M2BertForMaskedLM(EncoderTaskModel):
    """Encoder (no pooler) + MLM head ``cls.predictions.*`` (reference ``BertForMaskedLM``).

    The decoder weight is the word-embedding matrix (tied, as in the reference); a checkpoint's
    ``cls.predictions.decoder.weight`` is checked to equal it when loading.
    """

    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.config = config
        self.bert = M2BertModel(config, add_pooling_layer=False)
        self.cls = _OnlyMLMHead(config)

    def task_output(self, out: EncoderOutput, attention_mask: mx.array | None) -> MaskedLMOutput:
        head = self.cls.predictions
        h = head.transform(out.last_hidden_state)
        logits = self.bert.embeddings.word_embeddings.as_linear(h) + head.decoder.bias
        return MaskedLMOutput(logits=logits, hidden_states=out.hidden_states)
