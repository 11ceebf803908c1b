"""The frozen 4-bit base layers of a QLoRA model.

``nn.QuantizedLinear`` multiplies by its packed weight with ``mx.quantized_matmul``, which keeps
the weight 4-bit all the way into the kernel: the right choice for a handful of rows. For the
many rows of a training batch it is the wrong one, on both backends:

* **GPU.** On an H100 (mlx 0.32.4, bfloat16, 16,384 rows by 768 x 3072), the quantized product
  and its input gradient take 1.16 and 1.27 ms against 0.68 and 0.75 ms for a plain product. A
  BERT-base QLoRA training step took 69.8 ms at 32 x 512 and 36.3 ms at 64 x 128; dequantizing
  each weight just before a plain product took them to 36.9 ms and 24.5 ms.
* **CPU.** MLX's CPU quantized product is a plain loop, far from the BLAS matrix product: for
  128 rows by 768 x 3072 (float32, 2 cores) it takes 348 ms against 18 ms for dequantize (11 ms)
  plus product, and 21 s against 0.25 s for 8,192 rows. A BERT-base QLoRA step at 8 x 128 took
  129.5 s with the quantized product and 4.4 s with the dequantized one.

:class:`QLoRABaseLinear` is a ``nn.QuantizedLinear`` (same parameters, same checkpoint names,
same ``isinstance``) that, from :data:`MIN_ROWS` rows on a GPU and :data:`MIN_ROWS_CPU` rows on
the CPU, multiplies by the dequantized weight instead. The weights stay 4-bit in memory: the
float copy lives for one product, and the backward pass dequantizes again rather than keeping
it (a custom gradient), so a training step holds no float copy of the frozen base between its
forward and backward passes. mlxbert-quant's and mlxbert-core's quantized layers make the
same choice; none of the three packages depends on another, so each carries its own copy.
"""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.nn as nn

from .model_tree import dense_weight

#: Rows (product of the input's leading dimensions) from which a GPU product dequantizes first.
#: Measured: 16,384 rows 1.9x and 8,192 rows 1.5x faster per step. Below, the kernel was as fast
#: or faster (H200, BERT-base steps: 4,096 rows 21.0 against 23.8 ms, 6,144 rows 31.8 against
#: 32.7 ms), so training keeps a higher threshold than mlxbert-quant's inference layers.
MIN_ROWS = 8192
#: The same on the CPU, where the quantized product costs about as much per row as a whole
#: dequantization (768 x 3072: 2.9 ms a row against 9.4 ms to dequantize; 8 rows 22 vs 13 ms).
MIN_ROWS_CPU = 8


def dequantize_first(x: mx.array) -> bool:
    """Whether the base product of ``x`` runs on the dequantized weight."""
    on_cpu = mx.default_device().type == mx.DeviceType.cpu
    return x.size // max(x.shape[-1], 1) >= (MIN_ROWS_CPU if on_cpu else MIN_ROWS)


@functools.cache
def _dequantized_product(group_size: int, bits: int, mode: str):
    """``x @ dequantize(W).T`` for one quantization format, as a function of ``x`` and the
    packed arrays, whose gradient dequantizes ``W`` again instead of keeping the float copy."""

    def dense(packed: list[mx.array], dtype: mx.Dtype) -> mx.array:
        weight, scales, *biases = packed
        biases_or_none = biases[0] if biases else None
        return mx.dequantize(
            weight, scales, biases_or_none, group_size=group_size, bits=bits, mode=mode
        ).astype(dtype)

    @mx.custom_function
    def product(x: mx.array, packed: list[mx.array]) -> mx.array:
        # The packed weights do not depend on x: without this tie the scheduler may dequantize
        # every layer of the model before the first product and hold them all at once.
        return x @ dense(mx.depends(list(packed), [x]), x.dtype).T

    @product.vjp
    def product_vjp(primals, cotangent, output):
        _x, packed = primals
        # Likewise tied to the incoming gradient: dequantized when the backward pass reaches
        # this layer.
        waiting = mx.depends(list(packed), [cotangent])
        # The packed weights are frozen (checked by the caller): their cotangents are zeros
        # that nothing reads.
        return cotangent @ dense(waiting, cotangent.dtype), [mx.zeros_like(p) for p in packed]

    return product


def _frozen(layer: nn.QuantizedLinear) -> bool:
    trainable = layer.trainable_parameters()
    return not any(name in trainable for name in ("weight", "scales", "biases"))


class QLoRABaseLinear(nn.QuantizedLinear):
    """``nn.QuantizedLinear`` whose many-row products use the dequantized weight (see the
    module docstring); created by ``QLoRABaseLinear.from_linear`` as QLoRA quantizes a base."""

    def __call__(self, x: mx.array) -> mx.array:
        if not dequantize_first(x):
            return super().__call__(x)
        if not _frozen(self):
            # Trainable quantization parameters need MLX's own gradients.
            weight = dense_weight(self).astype(x.dtype)
            out = x @ weight.T
        else:
            packed = [self.weight, self.scales] + ([self["biases"]] if "biases" in self else [])
            out = _dequantized_product(self.group_size, self.bits, self.mode)(x, packed)
        if "bias" in self:
            out = out + self["bias"].astype(x.dtype)
        return out
