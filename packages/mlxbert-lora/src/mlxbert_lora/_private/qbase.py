"""The frozen 4-bit base layers of a QLoRA model.

``nn.QuantizedLinear`` multiplies by its packed weight with ``mx.quantized_matmul``, which keeps
the weight 4-bit all the way into the kernel: the right choice for inference and small
batches. For training batches on a GPU it is the wrong one. On an H100 (mlx 0.32.4, bfloat16,
16,384 rows by 768 x 3072), the quantized product and its input gradient take 1.16 and 1.27 ms
against 0.68 and 0.75 ms for a plain product, and the gradient through ``quantized_matmul``
(``transpose=False``) takes 0.75 ms against 0.31 ms for ``g @ dequantize(W)``. A BERT-base QLoRA
training step took 69.8 ms at 32 x 512 (14.6 GiB peak) and 36.3 ms at 64 x 128 (7.1 GiB).
Dequantizing each weight just before a plain product took them to 36.9 ms (9.0 GiB) and
24.5 ms (4.8 GiB), with the same losses to 3 decimals.

:class:`QLoRABaseLinear` is that layer: a ``nn.QuantizedLinear`` (same parameters, same
checkpoint names, same ``isinstance``) that, for inputs of at least :data:`MIN_ROWS` rows off
the CPU, multiplies by the dequantized weight instead. The weights stay 4-bit in memory; the
float copy lives for one product, plus, inside a training step, until the backward pass uses
it (BERT-base: 170 MB in bfloat16 in all). Nothing changes on the CPU (not measured there) or
for smaller inputs.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .model_tree import dense_weight

#: Rows (product of the input's leading dimensions) from which a GPU product dequantizes first.
#: Measured: 16,384 rows 1.9x and 8,192 rows 1.5x faster per step; 4,096 rows not changed.
MIN_ROWS = 8192


def dequantize_first(x: mx.array) -> bool:
    """Whether the base product of ``x`` runs on the dequantized weight."""
    if mx.default_device().type == mx.DeviceType.cpu:
        return False
    return x.size // max(x.shape[-1], 1) >= MIN_ROWS


class QLoRABaseLinear(nn.QuantizedLinear):
    """``nn.QuantizedLinear`` whose large GPU products use the dequantized weight (see the
    module docstring); created by ``QLoRABaseLinear.from_linear`` as QLoRA quantizes a base."""

    def __call__(self, x: mx.array) -> mx.array:
        if not dequantize_first(x):
            return super().__call__(x)
        weight = dense_weight(self).astype(x.dtype)
        if "bias" in self:
            return mx.addmm(self["bias"].astype(x.dtype), x, weight.T)
        return x @ weight.T
