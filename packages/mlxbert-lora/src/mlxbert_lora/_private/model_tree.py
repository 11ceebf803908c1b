"""Finding and replacing modules of any `mlx.nn.Module` by dotted path (no model classes needed)."""

from __future__ import annotations

from collections.abc import Iterator

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

LINEAR_TYPES = (nn.Linear, nn.QuantizedLinear)


def named_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(dotted path, module) for every module below `model` (the root has path "")."""
    yield from model.named_modules()


def linear_paths(model: nn.Module) -> list[str]:
    """Dotted paths of the `nn.Linear` / `nn.QuantizedLinear` layers of `model`, in tree order.

    Layers inside an existing LoRA wrapper (its base layer) are not listed.
    """
    from .layers import LoRALinear

    wrapped = {p for p, m in named_modules(model) if isinstance(m, LoRALinear)}
    paths = []
    for path, module in named_modules(model):
        if not isinstance(module, LINEAR_TYPES) or not path:
            continue
        if any(path.startswith(w + ".") for w in wrapped):
            continue
        paths.append(path)
    return sorted(paths, key=_natural_key)


def _natural_key(path: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split(".")]


def get_module(model: nn.Module, path: str):
    obj = model
    for part in path.split(".") if path else []:
        obj = obj[int(part)] if isinstance(obj, (list, tuple)) else obj[part]
    return obj


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the module at dotted `path` (attributes, list items and dict entries)."""
    if not path:
        raise ValueError("Cannot replace the root module.")
    parent_path, _, last = path.rpartition(".")
    parent = get_module(model, parent_path)
    if isinstance(parent, list):
        parent[int(last)] = new
    elif isinstance(parent, nn.Module):
        setattr(parent, last, new)
    elif isinstance(parent, dict):
        parent[last] = new
    else:
        raise TypeError(f"Cannot replace {path!r}: its parent is a {type(parent).__name__}.")


def linear_shape(layer: nn.Module) -> tuple[int, int]:
    """(output_dims, input_dims) of a float or quantized Linear layer."""
    if isinstance(layer, nn.QuantizedLinear):
        out_dims, packed = layer.weight.shape
        return out_dims, packed * 32 // layer.bits
    out_dims, in_dims = layer.weight.shape
    return out_dims, in_dims


def dense_weight(layer: nn.Module) -> mx.array:
    """The float weight `[out, in]` of a Linear layer (dequantized for a quantized one)."""
    if isinstance(layer, nn.QuantizedLinear):
        return mx.dequantize(
            layer.weight,
            layer.scales,
            layer.get("biases"),
            group_size=layer.group_size,
            bits=layer.bits,
            mode=layer.mode,
        )
    return layer.weight


def compute_dtype(layer: nn.Module) -> mx.Dtype:
    """The float dtype a layer computes in (a quantized layer: the dtype of its scales)."""
    return layer.scales.dtype if isinstance(layer, nn.QuantizedLinear) else layer.weight.dtype


def param_nbytes(model: nn.Module) -> int:
    """Bytes held by all parameters of `model` (packed quantized weights count as stored)."""
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))
