"""Float32 NumPy weights of MLX layers (quantized layers are dequantized)."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np


def _numpy(value: mx.array) -> np.ndarray:
    return np.array(value.astype(mx.float32))


def _dequantized(module: Any) -> mx.array:
    return mx.dequantize(
        module.weight,
        module.scales,
        module.get("biases"),
        group_size=module.group_size,
        bits=module.bits,
        mode=getattr(module, "mode", "affine"),
    )


def dense(module: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(weight (out, in), bias or None)`` of a linear layer, plain or quantized."""
    weight = _dequantized(module) if "scales" in module else module.weight
    bias = module.get("bias")
    return _numpy(weight), None if bias is None else _numpy(bias)


def table(module: Any) -> np.ndarray:
    """The (rows, width) table of an embedding layer, plain or quantized."""
    return _numpy(_dequantized(module) if "scales" in module else module.weight)


def norm(module: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(weight, bias)`` of a LayerNorm / RMSNorm (either may be absent)."""
    weight, bias = module.get("weight"), module.get("bias")
    return (
        None if weight is None else _numpy(weight),
        None if bias is None else _numpy(bias),
    )


__all__ = ["dense", "norm", "table"]
