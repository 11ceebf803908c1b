"""An embedding table whose gradient is summed in float32.

The gradient of a table lookup adds each token's output gradient into its row (a
scatter-add). When the table is bfloat16 or float16, as it is inside a mixed-precision
training step, MLX adds in that dtype:

* **Precision.** A row that many tokens share (the single token-type row of a batch without
  segment B, ``[CLS]``, ``[SEP]``, padding) sums thousands of terms in an 8-bit (bfloat16)
  mantissa, where each term is rounded against the running total. PyTorch's autocast keeps
  embeddings in float32 for this reason.
* **Speed on GPUs.** The adds are atomic; atomics on 16-bit values are compare-and-swap loops
  that retry under contention, so thousands of tokens hitting one row (the token-type table
  of a one-segment batch, the padding row) serialise; the same adds in float32 use native
  atomics (measured in docs/BENCHMARKS.md, Training step).

:class:`Embedding` is ``mlx.nn.Embedding`` (same parameter, same ``as_linear`` and
``to_quantized``) whose lookup, for 16-bit tables, sums the gradient in float32 and rounds
the total once to the table's dtype. Forward values are unchanged (the lookup copies rows).
Float32 tables take MLX's own lookup, so nothing changes there.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

__all__ = ["Embedding", "lookup"]


@mx.custom_function
def _lookup_float32_grad(weight: mx.array, ids: mx.array) -> mx.array:
    return weight[ids]


@_lookup_float32_grad.vjp
def _lookup_float32_grad_vjp(primals, cotangent, output):
    weight, ids = primals
    rows = cotangent.reshape(-1, weight.shape[-1]).astype(mx.float32)
    grad = mx.zeros(weight.shape, dtype=mx.float32).at[ids.reshape(-1)].add(rows)
    # Integer ids have no gradient; MLX expects a cotangent for every primal.
    return grad.astype(weight.dtype), mx.zeros_like(ids)


def lookup(weight: mx.array, ids: mx.array) -> mx.array:
    """``weight[ids]``; for 16-bit tables the gradient is summed in float32 (see the module
    docstring)."""
    if weight.dtype in (mx.bfloat16, mx.float16):
        return _lookup_float32_grad(weight, ids)
    return weight[ids]


class Embedding(nn.Embedding):
    """``mlx.nn.Embedding`` whose 16-bit lookups sum their gradient in float32."""

    def __call__(self, x: mx.array) -> mx.array:
        return lookup(self.weight, x)
