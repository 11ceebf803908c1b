"""Encoder + pooling + dropout + head, trainable end to end.

Any encoder works if calling it returns an object with ``last_hidden_state`` (and
``hidden_states`` when called with ``output_hidden_states=True``): an mlxbert encoder, a
converted checkpoint, or a few lines of ``mlx.nn``. Nothing here imports a model library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .heads._base import TaskHead
from .pooling import Pooler

_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@runtime_checkable
class EncoderOutputLike(Protocol):
    """What an encoder returns: token states (batch, seq_len, hidden)."""

    last_hidden_state: mx.array


class EncoderLike(Protocol):
    """An encoder callable. ``attention_mask`` / ``token_type_ids`` are passed only when the
    caller has them; ``output_hidden_states=True`` only for weighted-layer pooling, and then
    the output must also carry ``hidden_states`` (a sequence of (batch, seq_len, hidden))."""

    def __call__(self, input_ids: mx.array, **kwargs: Any) -> EncoderOutputLike: ...


def _as_array(value: Any) -> mx.array:
    return value if isinstance(value, mx.array) else mx.array(np.asarray(value))


class TaskModel(nn.Module):
    """``head(dropout(pool(encoder(input_ids, ...))))``.

    Args:
        encoder: any :class:`EncoderLike` (an ``nn.Module`` to be trained along).
        head: a task head (see ``create_head``).
        pooling: "cls", "mean", "max", "attention" or "weighted_layer".
        dropout: dropout on the pooled vector (active in ``train()`` mode).
        num_layers: number of ``hidden_states`` for weighted-layer pooling; read from
            ``encoder.config.num_hidden_layers`` (+1 for the embeddings) when omitted.
    """

    def __init__(
        self,
        encoder: EncoderLike,
        head: TaskHead,
        pooling: str = "cls",
        *,
        dropout: float = 0.1,
        num_layers: int | None = None,
    ):
        super().__init__()
        if not callable(encoder):
            raise ValueError("encoder must be callable: encoder(input_ids, ...) -> output")
        if not isinstance(head, TaskHead):
            raise ValueError(
                f"head must be a TaskHead (see create_head), got {type(head).__name__}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if pooling == "weighted_layer" and num_layers is None:
            config = getattr(encoder, "config", None)
            layers = getattr(config, "num_hidden_layers", None)
            num_layers = None if layers is None else int(layers) + 1
        self.encoder = encoder
        self.pooler = Pooler(pooling, hidden_size=head.hidden_size, num_layers=num_layers)
        self.dropout = nn.Dropout(dropout)
        self.head = head
        self._dropout_rate = float(dropout)

    @property
    def pooling(self) -> str:
        return self.pooler.mode

    def _head_extras(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        allowed = self.head.extra_inputs
        unknown = sorted(set(extra) - set(allowed))
        if unknown:
            raise ValueError(
                f"{type(self.head).__name__} takes no input(s) {', '.join(unknown)}"
                + (f"; it accepts {', '.join(allowed)}" if allowed else "")
            )
        return {k: v for k, v in extra.items() if v is not None}

    def pooled(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
    ) -> mx.array:
        """The pooled representation (batch, hidden) before dropout and head."""
        kwargs: dict[str, Any] = {}
        if attention_mask is not None:
            attention_mask = _as_array(attention_mask)
            kwargs["attention_mask"] = attention_mask
        if token_type_ids is not None:
            kwargs["token_type_ids"] = _as_array(token_type_ids)
        if self.pooler.needs_hidden_states:
            kwargs["output_hidden_states"] = True
        output = self.encoder(_as_array(input_ids), **kwargs)
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None:
            raise ValueError(
                f"the encoder returned {type(output).__name__}, which has no last_hidden_state"
            )
        states: Sequence[mx.array] | None = None
        if self.pooler.needs_hidden_states:
            states = getattr(output, "hidden_states", None)
        return self.pooler(hidden, attention_mask, states)

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        **extra: Any,
    ) -> mx.array:
        """Head outputs (logits, standardised values...) for a batch of token ids;
        ``extra`` holds head inputs such as a forecasting head's ``history``."""
        extras = self._head_extras(extra)
        pooled = self.pooled(input_ids, attention_mask, token_type_ids)
        return self.head(self.dropout(pooled), **extras)

    def _split_batch(self, batch: Mapping[str, Any]):
        if "input_ids" not in batch:
            raise ValueError("batch needs 'input_ids' (and usually 'attention_mask', 'labels')")
        inputs = {k: batch[k] for k in _INPUT_KEYS if batch.get(k) is not None}
        extra = {k: v for k, v in batch.items() if k not in (*_INPUT_KEYS, "labels")}
        return inputs, extra

    def loss(self, batch: Mapping[str, Any]) -> mx.array:
        """Mean training loss of a batch dict with input_ids, attention_mask,
        (token_type_ids), labels and any extra head inputs."""
        if "labels" not in batch:
            raise ValueError("batch needs 'labels' to compute a loss")
        inputs, extra = self._split_batch(batch)
        return self.head.loss(self(**inputs, **extra), batch["labels"])

    def predict(self, batch: Mapping[str, Any]) -> np.ndarray:
        """User-facing predictions for a batch (labels are ignored); runs in eval mode and
        restores the previous mode."""
        inputs, extra = self._split_batch(batch)
        was_training = self.training
        self.eval()
        try:
            return self.head.predict(self(**inputs, **extra))
        finally:
            self.train(was_training)

    def get_config(self) -> dict[str, Any]:
        """Pooling, dropout and the head's config (the encoder is configured elsewhere)."""
        config: dict[str, Any] = {
            "pooling": self.pooling,
            "dropout": self._dropout_rate,
            "head": self.head.get_config(),
        }
        if self.pooler.needs_hidden_states:
            config["num_layers"] = int(self.pooler.layer_logits.shape[0])
        return config


__all__ = ["EncoderLike", "EncoderOutputLike", "TaskModel"]
