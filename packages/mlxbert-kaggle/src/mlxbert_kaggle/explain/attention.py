"""Attention maps of an encoder and attention rollout (Abnar & Zuidema, 2020).

Any encoder that returns ``attentions`` (one ``[batch, heads, query, key]`` array per layer)
with ``output_attentions=True`` works; one that returns none (a mixer without attention,
such as M2-BERT's Monarch layers) gives ``None`` here and callers say so.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np


def attention_maps(encoder: Any, inputs: dict[str, Any]) -> np.ndarray | None:
    """(layers, heads, tokens, tokens) attention probabilities of one input, or None when the
    encoder computes none."""
    output = encoder(**inputs, output_attentions=True)
    attentions = getattr(output, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        return None
    return np.stack([np.array(a.astype(mx.float32))[0] for a in attentions]).astype(np.float64)


def select(maps: np.ndarray, layer: int, head: int | None) -> np.ndarray:
    """One layer's map: a head's, or the mean over heads (``head=None``)."""
    chosen = maps[layer]
    return chosen.mean(axis=0) if head is None else chosen[head]


def rollout(maps: np.ndarray, pooling: str) -> np.ndarray:
    """Token importances from attention rollout: per layer the head-averaged attention plus
    the residual path (0.5 A + 0.5 I, rows renormalised), multiplied through the layers; the
    pooled vector's row is read off (``cls``: the first token's, otherwise the mean over
    tokens, as mean pooling reads the sequence). Sums to 1."""
    tokens = maps.shape[-1]
    joint = np.eye(tokens)
    for layer in maps:
        a = 0.5 * layer.mean(axis=0) + 0.5 * np.eye(tokens)
        a /= a.sum(axis=-1, keepdims=True)
        joint = a @ joint
    row = joint[0] if pooling == "cls" else joint.mean(axis=0)
    return row / row.sum()


__all__ = ["attention_maps", "rollout", "select"]
