"""Pooling token states (batch, seq, hidden) into one vector per sequence.

Modes: "cls" (first token), "mean" and "max" (over unmasked tokens), "attention" (a learned
score per token, softmax over unmasked tokens) and "weighted_layer" (a learned softmax mix of
all ``hidden_states`` layers, then a masked mean). A mask of None means every token counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

POOLING_MODES = ("cls", "mean", "max", "attention", "weighted_layer")


def _check_hidden(hidden: mx.array) -> None:
    if hidden.ndim != 3:
        raise ValueError(
            f"expected token states of shape (batch, seq_len, hidden), got {tuple(hidden.shape)}"
        )


def _bool_mask(mask: mx.array | None, hidden: mx.array) -> mx.array | None:
    if mask is None:
        return None
    mask = mx.array(mask) if not isinstance(mask, mx.array) else mask
    if mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"attention_mask has shape {tuple(mask.shape)} but token states are "
            f"{tuple(hidden.shape[:2])} (batch, seq_len)"
        )
    return mask.astype(mx.bool_)


def mean_pool(hidden: mx.array, mask: mx.array | None = None) -> mx.array:
    """Mean over unmasked tokens (rows without any token give zeros)."""
    _check_hidden(hidden)
    keep = _bool_mask(mask, hidden)
    if keep is None:
        return hidden.mean(axis=1)
    weights = keep.astype(hidden.dtype)[..., None]
    count = mx.maximum(weights.sum(axis=1), 1.0)
    return (hidden * weights).sum(axis=1) / count


def max_pool(hidden: mx.array, mask: mx.array | None = None) -> mx.array:
    """Feature-wise max over unmasked tokens (rows without any token give zeros)."""
    _check_hidden(hidden)
    keep = _bool_mask(mask, hidden)
    if keep is None:
        return hidden.max(axis=1)
    # The dtype's finite minimum, never -inf or -1e9 (overflows in half precision).
    lowest = mx.array(mx.finfo(hidden.dtype).min, dtype=hidden.dtype)
    pooled = mx.where(keep[..., None], hidden, lowest).max(axis=1)
    return mx.where(keep.any(axis=1, keepdims=True), pooled, mx.zeros_like(pooled))


def cls_pool(hidden: mx.array, mask: mx.array | None = None) -> mx.array:
    """The first token's state ([CLS] in BERT-style encoders)."""
    _check_hidden(hidden)
    return hidden[:, 0]


class Pooler(nn.Module):
    """Pool encoder outputs to (batch, hidden). Learned modes hold mlx parameters:
    "attention" a Linear(hidden, 1) scorer (needs ``hidden_size``), "weighted_layer" one
    logit per layer (needs ``num_layers``, the length of ``hidden_states``: embeddings +
    every transformer layer, e.g. 13 for BERT-base)."""

    def __init__(
        self, mode: str = "cls", *, hidden_size: int | None = None, num_layers: int | None = None
    ):
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"unknown pooling {mode!r}; choose one of {', '.join(POOLING_MODES)}")
        self.mode = mode
        if mode == "attention":
            if not hidden_size or hidden_size < 1:
                raise ValueError("attention pooling needs hidden_size (the encoder's width)")
            self.scorer = nn.Linear(hidden_size, 1)
        if mode == "weighted_layer":
            if not num_layers or num_layers < 1:
                raise ValueError(
                    "weighted_layer pooling needs num_layers = len(hidden_states) "
                    "(embeddings + transformer layers, e.g. 13 for a 12-layer BERT)"
                )
            # Zero logits: an even mix to start with.
            self.layer_logits = mx.zeros((num_layers,))

    @property
    def needs_hidden_states(self) -> bool:
        return self.mode == "weighted_layer"

    def layer_weights(self) -> mx.array:
        """The softmax weights of the weighted-layer mix."""
        if self.mode != "weighted_layer":
            raise ValueError("layer weights exist only for weighted_layer pooling")
        return mx.softmax(self.layer_logits)

    def __call__(
        self,
        last_hidden_state: mx.array,
        mask: mx.array | None = None,
        hidden_states: Sequence[mx.array] | None = None,
    ) -> mx.array:
        if self.mode == "cls":
            return cls_pool(last_hidden_state, mask)
        if self.mode == "mean":
            return mean_pool(last_hidden_state, mask)
        if self.mode == "max":
            return max_pool(last_hidden_state, mask)
        if self.mode == "attention":
            return self._attention(last_hidden_state, mask)
        return self._weighted_layers(hidden_states, mask)

    def _attention(self, hidden: mx.array, mask: mx.array | None) -> mx.array:
        _check_hidden(hidden)
        scores = self.scorer(hidden)[..., 0]
        keep = _bool_mask(mask, hidden)
        if keep is not None:
            lowest = mx.array(mx.finfo(scores.dtype).min, dtype=scores.dtype)
            scores = mx.where(keep, scores, lowest)
        weights = mx.softmax(scores.astype(mx.float32), axis=-1).astype(hidden.dtype)
        if keep is not None:
            weights = weights * keep.any(axis=1, keepdims=True)  # all-masked rows -> zeros
        return (weights[..., None] * hidden).sum(axis=1)

    def _weighted_layers(self, hidden_states, mask) -> mx.array:
        if hidden_states is None:
            raise ValueError(
                "weighted_layer pooling needs hidden_states: call the encoder with "
                "output_hidden_states=True"
            )
        num_layers = self.layer_logits.shape[0]
        if len(hidden_states) != num_layers:
            raise ValueError(
                f"weighted_layer pooling was built for {num_layers} layers but got "
                f"{len(hidden_states)} hidden states"
            )
        weights = mx.softmax(self.layer_logits)
        mixed = sum(weights[i] * h for i, h in enumerate(hidden_states))
        return mean_pool(mixed, mask)


__all__ = ["POOLING_MODES", "Pooler", "cls_pool", "max_pool", "mean_pool"]
