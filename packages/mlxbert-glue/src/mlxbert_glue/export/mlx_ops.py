"""The MLX backend of :class:`~.ops.Ops`, written for ``mx.export_function(shapeless=True)``.

A shapeless trace replays its graph at any batch size and length, so nothing here may bake a
shape in: no slicing (MLX cannot infer a slice's shape), no reshape to concrete sizes, no
``arange(seq_len)``. Positions come from a cumulative sum, heads are split with
``unflatten`` / ``flatten``, rotary embeddings are a product with a signed permutation and
tables gathered at the positions, the first token is a masked sum.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .errors import ExportError
from .ops import ACTIVATIONS, Ops, contiguous, rope_tables

_DTYPES = {"float32": mx.float32, "float16": mx.float16}
_SQRT_HALF = 0.7071067811865476


class MlxOps(Ops):
    """Computes eagerly; the caller traces it (see :mod:`.formats.mlxfn`)."""

    def __init__(self, *, dtype: str = "float32", max_positions: int = 512):
        self.dtype = dtype
        self.max_positions = int(max_positions)
        self._mx_dtype = _DTYPES[dtype]
        self._cache: dict[Any, Any] = {}

    def _constant(self, key: Any, make) -> mx.array:
        if key not in self._cache:
            value = make()
            mx.eval(value)
            self._cache[key] = value
        return self._cache[key]

    def _scalar(self, value: float) -> mx.array:
        return mx.array(value, self._mx_dtype)

    # -- constants -----------------------------------------------------------------------
    def weight(self, array: np.ndarray, name: str) -> mx.array:
        # Contiguous first: an MLX array made from a strided NumPy view (a transpose) keeps
        # its strides, and mx.export_function writes such an array's buffer as if it had none.
        value = mx.array(contiguous(array, np.float32)).astype(self._mx_dtype)
        mx.eval(value)  # a constant of the trace, not a lazy computation
        return value

    def constant(self, array: np.ndarray, name: str) -> mx.array:
        value = mx.array(contiguous(array))
        mx.eval(value)
        return value

    # -- arithmetic ----------------------------------------------------------------------
    def add(self, a, b):
        return a + b

    def mul(self, a, b):
        return a * b

    def matmul(self, a, b):
        return a @ b

    def linear(self, x, weight, bias, name):
        w = self.weight(np.asarray(weight).T, f"{name}.weight")
        out = x @ w
        return out if bias is None else out + self.weight(bias, f"{name}.bias")

    def to_float32(self, x):
        return x.astype(mx.float32)

    def act(self, x, name):
        kind = ACTIVATIONS.get(name)
        if kind is None:
            raise ValueError(f"activation {name!r} has no graph form")
        if kind == "relu":
            return nn.relu(x)
        if kind == "tanh":
            return mx.tanh(x)
        v = x.astype(mx.float32)
        if kind == "gelu":
            out = 0.5 * v * (1.0 + mx.erf(v * _SQRT_HALF))
        elif kind == "gelu_tanh":
            out = nn.gelu_approx(v)
        else:
            out = v * mx.sigmoid(v)
        return out.astype(self._mx_dtype)

    def layer_norm(self, x, weight, bias, eps, name):
        w = None if weight is None else self.weight(weight, f"{name}.weight")
        b = None if bias is None else self.weight(bias, f"{name}.bias")
        return mx.fast.layer_norm(x, w, b, eps)

    def rms_norm(self, x, weight, eps, name):
        return mx.fast.rms_norm(x, self.weight(weight, f"{name}.weight"), eps)

    # -- embeddings, positions, masks ------------------------------------------------------
    def embed(self, table, ids, name):
        return mx.take(self.weight(table, name), ids, axis=0)

    def positions(self, input_ids):
        return mx.cumsum(input_ids * 0 + 1, axis=1) - 1  # (B, S)

    def token_mask(self, attention_mask):
        return attention_mask != 0

    def key_padding_mask(self, tokens):
        empty = mx.logical_not(mx.any(tokens, axis=-1, keepdims=True))
        return mx.expand_dims(mx.logical_or(tokens, empty), (1, 2))

    def window_mask(self, tokens, positions, half_window, global_mask):
        dist = mx.abs(mx.expand_dims(positions, 2) - mx.expand_dims(positions, 1))
        window = dist <= half_window  # (B, S, S)
        allowed = mx.logical_or(
            mx.expand_dims(tokens, 1), mx.expand_dims(mx.logical_not(tokens), 2)
        )
        local = mx.expand_dims(mx.logical_and(window, allowed), 1)
        return mx.where(mx.max(positions) <= half_window, global_mask, local)

    # -- attention -------------------------------------------------------------------------
    def split_heads(self, x, heads):
        return mx.unflatten(x, -1, (heads, -1)).transpose(0, 2, 1, 3)

    def merge_heads(self, x):
        return mx.flatten(x.transpose(0, 2, 1, 3), -2, -1)

    def rope(self, x, positions, theta, dim, traditional):
        def tables():
            cos, sin, rot = rope_tables(theta, dim, self.max_positions, traditional)
            return tuple(self.weight(a, "rope") for a in (cos, sin, rot))

        cos, sin, rot = self._constant(("rope", float(theta), dim, traditional), tables)
        cos_p = mx.expand_dims(mx.take(cos, positions, axis=0), 1)  # (B, 1, S, D)
        sin_p = mx.expand_dims(mx.take(sin, positions, axis=0), 1)
        return x * cos_p + (x @ rot) * sin_p

    def attention(self, q, k, v, mask, scale):
        scores = ((q * self._scalar(scale)) @ k.swapaxes(-1, -2)).astype(mx.float32)
        if mask is not None:
            scores = mx.where(mask, scores, mx.finfo(mx.float32).min)
        probs = mx.softmax(scores, axis=-1).astype(self._mx_dtype)
        return probs @ v

    # -- pooling ---------------------------------------------------------------------------
    def first_token(self, x):
        # A sum over positions weighted 1 at position 0 (where the running count of ones is
        # 1) and 0 elsewhere: the first token without a slice.
        first = (mx.cumsum(x * 0 + 1, axis=1) == 1).astype(x.dtype)
        return (x * first).sum(axis=1)

    def masked_mean(self, x, tokens, min_count):
        w = mx.expand_dims(tokens.astype(mx.float32), 2)
        total = (x.astype(mx.float32) * w).sum(axis=1)
        count = mx.maximum(w.sum(axis=1), min_count)
        return (total / count).astype(self._mx_dtype)

    def masked_max(self, x, tokens, zero_empty):
        keep = mx.expand_dims(tokens, 2)
        lowest = mx.array(mx.finfo(self._mx_dtype).min, self._mx_dtype)
        pooled = mx.where(keep, x, lowest).max(axis=1)
        if not zero_empty:
            return pooled
        return mx.where(mx.any(tokens, axis=1, keepdims=True), pooled, mx.zeros_like(pooled))

    def attention_pool(self, x, tokens, weight, bias):
        scores = mx.squeeze(self.linear(x, weight, bias, "pooler.scorer"), 2)
        lowest = mx.array(mx.finfo(self._mx_dtype).min, self._mx_dtype)
        scores = mx.where(tokens, scores, lowest).astype(mx.float32)
        probs = mx.softmax(scores, axis=-1).astype(self._mx_dtype)
        probs = probs * mx.any(tokens, axis=1, keepdims=True)
        return (mx.expand_dims(probs, 2) * x).sum(axis=1)

    def l2_normalize(self, x, eps):
        v = x.astype(mx.float32)
        norm = mx.sqrt((v * v).sum(axis=-1, keepdims=True))
        return (v / mx.maximum(norm, eps)).astype(self._mx_dtype)

    def softmax_mix(self, tensors, logits):
        z = np.exp(logits.astype(np.float64) - logits.max())
        weights = (z / z.sum()).astype(np.float32)
        out = None
        for w, t in zip(weights, tensors):
            term = t * self._scalar(float(w))
            out = term if out is None else out + term
        return out

    def subtract_from(self, constant, x, name):
        return self.weight(constant[None, :], name) - x

    def unflatten_last(self, x, shape):
        return mx.unflatten(x, -1, shape)

    def elementwise(self, x, kind):
        return {"sin": mx.sin, "exp": mx.exp, "abs": mx.abs}[kind](x)

    def concat(self, tensors, axis):
        return mx.concatenate(tensors, axis=axis)

    def zeros_like(self, x):
        return x * 0

    def reverse(self, x, axis):
        raise ExportError("reversing a sequence has no shapeless MLX form")

    def causal_depthwise_conv(self, x, weight, bias):
        raise ExportError("a causal depthwise convolution has no shapeless MLX form")

    def circular_convolution(self, u, kernel):
        raise ExportError(
            "an FFT convolution has no shapeless MLX form (MLX's FFT length is fixed at trace time)"
        )


__all__ = ["MlxOps"]
