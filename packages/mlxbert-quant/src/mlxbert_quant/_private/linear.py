"""The quantized linear layer of mlxbert: ``nn.QuantizedLinear`` with a fast path for many rows.

``nn.QuantizedLinear`` multiplies by its packed weight with ``mx.quantized_matmul``, which keeps
the weight packed all the way into the kernel: the right choice for a handful of rows. For many
rows it is the wrong one. MLX's CPU version of that product is a plain loop, far from the BLAS
matrix product, so from a few rows on it costs more than dequantizing the whole weight and
calling BLAS; on a GPU the quantized kernel wins up to a few thousand rows and loses beyond.
The measurements behind the two thresholds are in this package's README ("Speed").

:class:`QuantizedLinear` keeps the parameters, the checkpoint names and ``isinstance`` of
``nn.QuantizedLinear``; from :data:`MIN_ROWS_CPU` rows on the CPU and :data:`MIN_ROWS_GPU`
rows on a GPU it multiplies by the dequantized weight instead. The weights stay packed in
memory: the float copy lives for one product, and a backward pass (when the layer is the
frozen base of an adapter, as in QLoRA) dequantizes again instead of keeping it.

This is the one copy of the layer: :func:`~mlxbert_quant.quantize` and ``load_quantized``
install it, ``mlxbert_core.from_pretrained`` gives it to the layers of a saved quantized
folder, and mlxbert-lora adapts it like any ``nn.QuantizedLinear`` (pass
``QuantizedLinear.from_linear`` to ``apply_lora(..., quantize_layer=...)`` for QLoRA).
"""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.nn as nn

__all__ = [
    "MIN_ROWS_CPU",
    "MIN_ROWS_GPU",
    "QuantizedLinear",
    "dequantize_first",
    "install_fast_products",
]

#: Rows (product of the input's leading dimensions) from which a CPU product dequantizes first:
#: there the quantized product of a handful of rows costs about a whole dequantization.
MIN_ROWS_CPU = 8
#: The same on a GPU, where the quantized kernel stays the faster one for a few thousand rows.
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
    module docstring). Build one with ``QuantizedLinear.from_linear(linear, group_size, bits,
    mode)`` or give a whole model's layers the fast path with :func:`install_fast_products`."""

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
