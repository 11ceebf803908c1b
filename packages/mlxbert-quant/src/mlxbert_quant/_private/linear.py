"""The quantized linear layer this package installs: ``nn.QuantizedLinear`` with a fast path
for many rows.

``nn.QuantizedLinear`` multiplies by its packed weight with ``mx.quantized_matmul``. MLX's CPU
version of that product is a plain loop, far from the BLAS matrix product: for 128 rows by
768 x 3072 (float32, 2 cores) it takes 348 ms, against 18 ms to dequantize the weight (11 ms)
and multiply. On a GPU the quantized kernel is the faster one for up to a few thousand rows
(H100, bfloat16, 16,384 rows by 768 x 3072: 1.16 ms against 0.68 ms for a plain product).

:class:`QuantizedLinear` keeps the parameters, the checkpoint names and ``isinstance`` of
``nn.QuantizedLinear``; from :data:`MIN_ROWS_CPU` rows on the CPU and :data:`MIN_ROWS_GPU`
rows on a GPU it multiplies by the dequantized weight instead. The weights stay packed in
memory: the float copy lives for one product, and a backward pass (when the layer is the
frozen base of an adapter) dequantizes again instead of keeping it.

mlxbert-core (loading a saved folder) and mlxbert-lora's QLoRA base layers make the same
choice; none of the three packages depends on another, so each carries its own copy.
"""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.nn as nn

#: Rows (product of the input's leading dimensions) from which a CPU product dequantizes first:
#: the quantized product costs about as much per row as a whole dequantization (768 x 3072:
#: 2.9 ms a row against 9.4 ms to dequantize; 8 rows 22 ms against 13 ms).
MIN_ROWS_CPU = 8
#: The same on a GPU. A 4-bit BERT-base forward (H200, bfloat16, eager) took 6.7-7.2 ms against
#: 9.9-10.8 ms through the quantized kernel at 4,096 rows, 13.1 against 28.2 ms at 16,384; at
#: 2,048 rows the two were within noise and at 1,024 the kernel won (4.4 against 5.2 ms).
MIN_ROWS_GPU = 4096


def dequantize_first(x: mx.array) -> bool:
    """Whether the product of ``x`` runs on the dequantized weight."""
    on_cpu = mx.default_device().type == mx.DeviceType.cpu
    return x.size // max(x.shape[-1], 1) >= (MIN_ROWS_CPU if on_cpu else MIN_ROWS_GPU)


@functools.cache
def _dequantized_product(group_size: int, bits: int, mode: str):
    """``x @ dequantize(W).T`` for one format, as a function of ``x`` and the packed arrays,
    whose gradient dequantizes ``W`` again instead of keeping the float copy."""

    def dense(packed: list[mx.array], dtype: mx.Dtype) -> mx.array:
        weight, scales, *biases = packed
        biases_or_none = biases[0] if biases else None
        return mx.dequantize(
            weight, scales, biases_or_none, group_size=group_size, bits=bits, mode=mode
        ).astype(dtype)

    @mx.custom_function
    def product(x: mx.array, packed: list[mx.array]) -> mx.array:
        # Tied to x: otherwise the scheduler may dequantize every layer of the model before
        # the first product and hold all the float copies at once.
        return x @ dense(mx.depends(list(packed), [x]), x.dtype).T

    @product.vjp
    def product_vjp(primals, cotangent, output):
        _x, packed = primals
        # Dequantized again when the backward pass reaches this layer. The packed weights are
        # frozen (checked by the caller): their cotangents are zeros that nothing reads.
        waiting = mx.depends(list(packed), [cotangent])
        return cotangent @ dense(waiting, cotangent.dtype), [mx.zeros_like(p) for p in packed]

    return product


def _frozen(layer: nn.QuantizedLinear) -> bool:
    trainable = layer.trainable_parameters()
    return not any(name in trainable for name in ("weight", "scales", "biases"))


class QuantizedLinear(nn.QuantizedLinear):
    """``nn.QuantizedLinear`` whose many-row products use the dequantized weight (see the
    module docstring)."""

    def __call__(self, x: mx.array) -> mx.array:
        if not dequantize_first(x) or not _frozen(self):
            # Few rows, or trainable quantization parameters: MLX's own product and gradients.
            return super().__call__(x)
        packed = [self.weight, self.scales] + ([self["biases"]] if "biases" in self else [])
        out = _dequantized_product(self.group_size, self.bits, self.mode)(x, packed)
        if "bias" in self:
            out = out + self["bias"].astype(x.dtype)
        return out


def install_fast_products(model: nn.Module) -> int:
    """Give every plain ``nn.QuantizedLinear`` of ``model`` the fast path; returns how many."""
    count = 0
    for _, module in model.named_modules():
        if type(module) is nn.QuantizedLinear:
            module.__class__ = QuantizedLinear
            count += 1
    return count
