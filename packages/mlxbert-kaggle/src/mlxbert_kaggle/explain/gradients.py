"""Gradient × input on the token embeddings, for any task model.

The token-embedding table is found by structure, not by architecture: the encoder's
embedding module (``nn.Embedding`` or ``nn.QuantizedEmbedding``) with as many rows as the
vocabulary (the largest table when the config does not say). For one call it is wrapped so
that its output gets a zero offset ``delta``; the gradient of the chosen output with respect
to ``delta`` is the gradient with respect to the token embeddings, and the importance of a
token is ``|gradient · embedding|`` (normalised to sum to 1).
"""

from __future__ import annotations

import contextlib
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

EMBEDDINGS = (nn.Embedding, nn.QuantizedEmbedding)


def _rows(module: Any) -> int:
    return int(getattr(module, "num_embeddings", 0) or module.weight.shape[0])


def token_embedding(encoder: Any, vocab_size: int | None) -> tuple[Any, str, Any]:
    """(parent module, attribute name, embedding module) of the token-embedding table."""
    found = [(name, m) for name, m in encoder.named_modules() if isinstance(m, EMBEDDINGS)]
    if not found:
        raise ValueError("the encoder has no embedding table to take gradients at")
    exact = [(n, m) for n, m in found if vocab_size is not None and _rows(m) == vocab_size]
    name, module = exact[0] if exact else max(found, key=lambda item: _rows(item[1]))
    parent = encoder
    *path, attribute = name.split(".")
    for part in path:
        parent = parent[int(part)] if isinstance(parent, list) else getattr(parent, part)
    return parent, attribute, module


class _Offset:
    """Holds the offset added to the embeddings and the embeddings last seen."""

    delta: mx.array | None = None
    seen: mx.array | None = None


class _ShiftedEmbedding(nn.Module):
    def __init__(self, inner: Any, offset: _Offset):
        super().__init__()
        self.inner = inner
        self._offset = offset

    def __call__(self, ids: mx.array) -> mx.array:
        out = self.inner(ids)
        self._offset.seen = out
        return out if self._offset.delta is None else out + self._offset.delta


def gradient_x_input(model: Any, inputs: dict[str, Any], output: int, vocab_size: int | None):
    """Importance of each token of one input for the model's ``output`` (a logit index, or
    0 for a single output): ``|sum_d dy/de_td * e_td|``, normalised to sum to 1."""
    parent, attribute, module = token_embedding(model.encoder, vocab_size)
    offset = _Offset()
    # The offset enters the forward as a closure value, which a compiled forward cannot
    # take a gradient through: the encoder runs eager for this call.
    eager = getattr(model.encoder, "eager_forward", contextlib.nullcontext)
    setattr(parent, attribute, _ShiftedEmbedding(module, offset))
    try:
        with eager():
            model(**inputs)
            embeddings = offset.seen
            assert embeddings is not None

            def chosen(delta: mx.array) -> mx.array:
                offset.delta = delta
                values = model(**inputs)
                return values.reshape(values.shape[0], -1)[0, output]

            grad = mx.grad(chosen)(mx.zeros(embeddings.shape, dtype=embeddings.dtype))
            scores = mx.abs(mx.sum(grad * embeddings, axis=-1))[0]
            values = np.array(scores.astype(mx.float32), dtype=np.float64)
    finally:
        setattr(parent, attribute, module)
    total = values.sum()
    return values / total if total > 0 else values


__all__ = ["gradient_x_input", "token_embedding"]
