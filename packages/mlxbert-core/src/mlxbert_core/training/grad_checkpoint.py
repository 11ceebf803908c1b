"""Per-layer gradient checkpointing for any encoder.

``enable_gradient_checkpointing(model)`` finds the model's list of transformer layers and makes
each one recompute its activations during the backward pass (``mx.checkpoint``) instead of
keeping them alive between forward and backward. Peak memory then holds one layer's
intermediate activations plus each layer's *input*, instead of every intermediate of every
layer; the price is one extra forward per layer in the backward pass. Gradients are unchanged.

Only the given layer instances change: each gets a private subclass whose ``__call__`` is
checkpointed (other instances of the same class, e.g. in an evaluation copy, are untouched),
and :func:`disable_gradient_checkpointing` restores the original class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

# Attribute paths, tried in order, where encoders keep their stack of layers
# (transformers' BERT: encoder.layer; mlx-lm style: layers; ModernBERT: layers; M2: ...).
LAYER_LIST_PATHS = (
    "encoder.layer",
    "encoder.layers",
    "bert.encoder.layer",
    "model.encoder.layer",
    "encoder.encoder.layer",
    "layers",
    "model.layers",
    "transformer_encoder",
    "transformer.layers",
    "blocks",
)

_CHECKPOINTED_CLASSES: dict[type, type] = {}


def _get_path(obj: Any, path: str) -> Any:
    for name in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(name)
        else:
            obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def find_layers(model: nn.Module) -> list[nn.Module]:
    """The model's list of transformer layers (searched at :data:`LAYER_LIST_PATHS`, then
    one level below each child module, e.g. ``encoder.bert.encoder.layer`` in a task model)."""
    for path in LAYER_LIST_PATHS:
        found = _get_path(model, path)
        if (
            isinstance(found, (list, tuple))
            and found
            and all(isinstance(m, nn.Module) for m in found)
        ):
            return list(found)
    for _, child in model.children().items():
        if isinstance(child, nn.Module):
            try:
                return find_layers(child)
            except ValueError:
                continue
    raise ValueError(
        f"Could not find the layer list of {type(model).__name__} (looked at "
        f"{', '.join(LAYER_LIST_PATHS)}). Pass the layers explicitly: "
        "enable_gradient_checkpointing(model.<path to layers>)."
    )


def _is_float_array(value: Any) -> bool:
    return isinstance(value, mx.array) and mx.issubdtype(value.dtype, mx.floating)


def _checkpointed_class(cls: type) -> type:
    if cls in _CHECKPOINTED_CLASSES:
        return _CHECKPOINTED_CLASSES[cls]
    original_call = cls.__call__

    def __call__(self, *args, **kwargs):
        # Only floating-point arrays (the hidden states) become inputs of the checkpointed
        # function; masks, ids, flags and None are closed over as constants. mx.checkpoint
        # differentiates with respect to all of its inputs, and some primitives refuse a
        # gradient for a mask (the fused attention kernel does).
        traced = [i for i, a in enumerate(args) if _is_float_array(a)]
        traced_kw = [k for k, v in kwargs.items() if _is_float_array(v)]

        def run(params, traced_args, traced_kwargs):
            # Inside mx.checkpoint the parameters are traced inputs: put them into the module
            # so the recomputation in the backward pass differentiates through them.
            self.update(params)
            full = list(args)
            for i, value in zip(traced, traced_args):
                full[i] = value
            return original_call(self, *full, **{**kwargs, **traced_kwargs})

        return mx.checkpoint(run)(
            self.trainable_parameters(),
            [args[i] for i in traced],
            {k: kwargs[k] for k in traced_kw},
        )

    checkpointed = type(f"Checkpointed{cls.__name__}", (cls,), {"__call__": __call__})
    checkpointed._mlxbert_original_class = cls
    _CHECKPOINTED_CLASSES[cls] = checkpointed
    return checkpointed


def enable_gradient_checkpointing(model_or_layers: nn.Module | Sequence[nn.Module]) -> int:
    """Checkpoint every layer of ``model_or_layers`` (a model, or the list of layers itself).

    Returns the number of layers wrapped; calling it twice is harmless.
    """
    if isinstance(model_or_layers, nn.Module) and not isinstance(model_or_layers, (list, tuple)):
        layers = find_layers(model_or_layers)
    else:
        layers = list(model_or_layers)
        if not all(isinstance(m, nn.Module) for m in layers):
            raise TypeError("enable_gradient_checkpointing expects a model or a list of modules")
    for layer in layers:
        if not hasattr(type(layer), "_mlxbert_original_class"):
            layer.__class__ = _checkpointed_class(type(layer))
    return len(layers)


def disable_gradient_checkpointing(model_or_layers: nn.Module | Sequence[nn.Module]) -> int:
    """Undo :func:`enable_gradient_checkpointing`; returns the number of layers restored."""
    if isinstance(model_or_layers, nn.Module) and not isinstance(model_or_layers, (list, tuple)):
        layers = find_layers(model_or_layers)
    else:
        layers = list(model_or_layers)
    restored = 0
    for layer in layers:
        original = getattr(type(layer), "_mlxbert_original_class", None)
        if original is not None:
            layer.__class__ = original
            restored += 1
    return restored
