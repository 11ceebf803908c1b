"""Per-layer gradient checkpointing for any encoder.

``enable_gradient_checkpointing(model)`` finds the model's list of transformer layers and makes
each one recompute its activations during the backward pass instead of keeping them alive
between forward and backward. Peak memory then holds one layer's intermediate activations plus
each layer's *input*, instead of every intermediate of every layer; the price is one extra
forward per layer in the backward pass. Gradients are unchanged, with dropout on too.

Two things differ from wrapping the layer in ``mx.checkpoint``: each recomputation waits for
the gradient arriving from the layer above (``mx.depends`` on the cotangents), so the scheduler
cannot run every layer's recomputation early and hold them all at once; and each layer draws
its random numbers from a key of its own, kept as an input, so the recomputation reproduces
the forward pass's dropout masks exactly (``mx.checkpoint`` would draw new ones).

Only the given layer instances change: each gets a private subclass whose ``__call__`` is
checkpointed (other instances of the same class, e.g. in an evaluation copy, are untouched),
and :func:`disable_gradient_checkpointing` restores the original class.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ..encoder import find_encoder

_CHECKPOINTED_CLASSES: dict[type, type] = {}


def _layer_list(value: Any) -> list[nn.Module] | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, nn.Module) for m in value):
        return list(value)
    return None


def find_layers(model: nn.Module) -> list[nn.Module]:
    """The model's list of transformer layers, as its encoder states them.

    ``model`` is an :class:`~mlxbert_core.Encoder` (its ``layers``), or holds one (a task
    model's ``encoder``, a ``*ForSequenceClassification``'s ``bert``: the encoder closest to
    the root). Any other model may keep its stack of layers as ``layers``, MLX's convention.
    """
    encoder = find_encoder(model)
    found = _layer_list(encoder.layers if encoder is not None else model.get("layers"))
    if found is None:
        raise ValueError(
            f"Could not find the layer list of {type(model).__name__}: it is not an "
            "mlxbert_core.Encoder, holds none, and has no 'layers' list. Pass the layers "
            "explicitly: enable_gradient_checkpointing(model.<path to layers>)."
        )
    return found


def _is_float_array(value: Any) -> bool:
    return isinstance(value, mx.array) and mx.issubdtype(value.dtype, mx.floating)


# The random functions a layer may call (dropout calls bernoulli) and that take a ``key``.
_KEYED_RANDOM_FUNCTIONS = ("bernoulli", "uniform", "normal", "randint", "truncated_normal")


@contextmanager
def _random_key(key: mx.array):
    """Inside the block, random functions called without a key draw from ``key`` (split once
    per call, in call order) instead of MLX's global random state.

    MLX offers no way to set its global key to a traced array, so the module-level functions
    are swapped for the block's duration (dropout looks them up at call time).
    """
    state = [key]

    def keyed(function):
        def draw(*args, key=None, **kwargs):
            if key is None:
                state[0], key = mx.random.split(state[0])
            return function(*args, key=key, **kwargs)

        return draw

    originals = {name: getattr(mx.random, name) for name in _KEYED_RANDOM_FUNCTIONS}
    for name, function in originals.items():
        setattr(mx.random, name, keyed(function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(mx.random, name, function)


def _flatten_outputs(outputs: Any) -> tuple[list[mx.array], Any]:
    """The arrays of a layer's output (a custom function returns arrays only) and a template
    to rebuild the original structure, ``None`` entries included."""
    if isinstance(outputs, mx.array):
        return [outputs], None
    if isinstance(outputs, (tuple, list)):
        arrays = [o for o in outputs if isinstance(o, mx.array)]
        slots = tuple(isinstance(o, mx.array) for o in outputs)
        rest = [o for o in outputs if not isinstance(o, mx.array)]
        if all(r is None for r in rest):
            return arrays, (type(outputs), slots)
    raise TypeError(
        "gradient checkpointing supports layers returning an array or a tuple of arrays and "
        f"None, not {type(outputs).__name__}"
    )


def _rebuild_outputs(arrays: list[mx.array], template: Any) -> Any:
    if template is None:
        return arrays[0]
    kind, slots = template
    it = iter(arrays)
    return kind(next(it) if is_array else None for is_array in slots)


def _checkpointed_call(layer: nn.Module, original_call, args: tuple, kwargs: dict):
    # Only floating-point arrays (the hidden states) become inputs of the checkpointed
    # function; masks, ids, flags and None are closed over as constants: some primitives
    # refuse a gradient for a mask (the fused attention kernel does).
    traced = [i for i, a in enumerate(args) if _is_float_array(a)]
    traced_kw = [k for k, v in kwargs.items() if _is_float_array(v)]
    param_items = tree_flatten(layer.trainable_parameters())
    n_params, n_args = len(param_items), len(traced)
    flat_primals = (
        [v for _, v in param_items] + [args[i] for i in traced] + [kwargs[k] for k in traced_kw]
    )
    # The layer draws its random numbers (dropout) from a key of its own, kept as an input,
    # so the recomputation in the backward pass uses the very masks the forward pass used.
    # A fresh key drawn from the global random state (which advances as usual).
    key = mx.random.randint(0, 2**31 - 1, (2,)).astype(mx.uint32)
    template: list[Any] = [None]

    def run(flat: list[mx.array], layer_key: mx.array) -> list[mx.array]:
        # The parameters are traced inputs here: put them into the module so the
        # recomputation differentiates through them.
        layer.update(tree_unflatten([(k, v) for (k, _), v in zip(param_items, flat)]))
        full = list(args)
        for i, value in zip(traced, flat[n_params : n_params + n_args]):
            full[i] = value
        traced_kwargs = dict(zip(traced_kw, flat[n_params + n_args :]))
        with _random_key(layer_key):
            outputs = original_call(layer, *full, **{**kwargs, **traced_kwargs})
        arrays, template[0] = _flatten_outputs(outputs)
        return arrays

    checkpointed = mx.custom_function(run)

    @checkpointed.vjp
    def recompute_vjp(primals_in, cotangents, _outputs):
        flat, layer_key = primals_in
        # mx.checkpoint lets the recomputation depend only on the forward outputs, so the
        # scheduler may run every layer's recomputation early and keep them all alive at
        # once (no memory saved on CUDA). Depending on the incoming cotangents forces each
        # recomputation to wait until the backward pass reaches its layer.
        waiting = mx.depends(list(flat), list(cotangents))
        _, grads = mx.vjp(lambda *xs: run(list(xs), layer_key), waiting, list(cotangents))
        return list(grads), mx.zeros_like(layer_key)

    arrays = checkpointed(flat_primals, key)
    return _rebuild_outputs(arrays, template[0])


def _checkpointed_class(cls: type) -> type:
    if cls in _CHECKPOINTED_CLASSES:
        return _CHECKPOINTED_CLASSES[cls]
    original_call = cls.__call__

    def __call__(self, *args, **kwargs):
        return _checkpointed_call(self, original_call, args, kwargs)

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
