"""Pooling token states into one vector per sequence, ignoring padding."""

from __future__ import annotations

import mlx.core as mx

__all__ = ["POOLING", "cls_pooling", "max_pooling", "mean_pooling", "normalize", "pool"]


def _mask(hidden: mx.array, attention_mask: mx.array | None) -> mx.array:
    if attention_mask is None:
        return mx.ones(hidden.shape[:2], dtype=hidden.dtype)
    if tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match the hidden "
            f"states' [batch, seq] {tuple(hidden.shape[:2])}"
        )
    return attention_mask.astype(hidden.dtype)


def mean_pooling(hidden: mx.array, attention_mask: mx.array | None = None) -> mx.array:
    """Mask-weighted mean over real tokens (sentence-transformers' "mean"); [B,S,H] -> [B,H]."""
    # Summed in float32 (a float16 sum over many tokens can overflow); the count is clamped
    # like sentence-transformers' clamp(min=1e-9), so an all-padding row gives zeros.
    mask = _mask(hidden, attention_mask).astype(mx.float32)[..., None]
    total = (hidden.astype(mx.float32) * mask).sum(axis=1)
    count = mx.maximum(mask.sum(axis=1), 1e-9)
    return (total / count).astype(hidden.dtype)


def cls_pooling(hidden: mx.array, attention_mask: mx.array | None = None) -> mx.array:
    """The first token's state ([CLS]); padding is on the right, so the mask is not needed."""
    return hidden[:, 0]


def max_pooling(hidden: mx.array, attention_mask: mx.array | None = None) -> mx.array:
    """Element-wise max over real tokens (padded positions never win)."""
    mask = _mask(hidden, attention_mask)[..., None]
    lowest = mx.array(mx.finfo(hidden.dtype).min, dtype=hidden.dtype)
    return mx.where(mask > 0, hidden, lowest).max(axis=1)


POOLING = {"mean": mean_pooling, "cls": cls_pooling, "max": max_pooling}


def pool(hidden: mx.array, attention_mask: mx.array | None = None, how: str = "mean") -> mx.array:
    """Pool with ``how`` in ``"mean"``, ``"cls"`` or ``"max"``."""
    try:
        fn = POOLING[how]
    except KeyError:
        raise ValueError(f"unknown pooling {how!r}; use one of {', '.join(POOLING)}") from None
    return fn(hidden, attention_mask)


def normalize(x: mx.array, eps: float = 1e-12) -> mx.array:
    """L2-normalise the last axis (zero vectors stay zero), like torch's F.normalize."""
    norm = mx.sqrt((x.astype(mx.float32) ** 2).sum(axis=-1, keepdims=True))
    return (x.astype(mx.float32) / mx.maximum(norm, eps)).astype(x.dtype)
