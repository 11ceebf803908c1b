"""Floating dtypes by name: the one parser of ``dtype=`` arguments and config strings."""

from __future__ import annotations

import mlx.core as mx

__all__ = ["FLOAT_DTYPES", "parse_dtype"]

#: The floating dtypes models compute in.
FLOAT_DTYPES = (mx.float32, mx.float16, mx.bfloat16)

_NAMES = {
    "float32": mx.float32,
    "fp32": mx.float32,
    "float": mx.float32,
    "float16": mx.float16,
    "fp16": mx.float16,
    "half": mx.float16,
    "bfloat16": mx.bfloat16,
    "bf16": mx.bfloat16,
}


def parse_dtype(dtype: str | mx.Dtype | None) -> mx.Dtype | None:
    """``"float32"``/``"float16"``/``"bfloat16"`` (or short forms, or an ``mx.Dtype``) ->
    ``mx.Dtype``; None stays None (the caller's default)."""
    if dtype is None or isinstance(dtype, mx.Dtype):
        if isinstance(dtype, mx.Dtype) and dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be a floating type, got {dtype}")
        return dtype
    key = str(dtype).strip().lower().replace("mlx.core.", "")
    if key not in _NAMES:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return _NAMES[key]
