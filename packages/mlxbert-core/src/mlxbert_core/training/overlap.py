"""Data parallel: all-reduce each layer's gradients during the backward pass.

Without this, the gradients are averaged after the whole backward pass, and every rank waits
for the all-reduce before it can update. MLX schedules a lazily built graph by data
dependencies only, so an all-reduce that nothing in the backward pass needs is placed at the
end. Here each transformer layer gets two identity functions with custom gradients:

* on its parameters: the gradient arriving for them is all-reduced at once (float32, one
  concatenated array per layer, on the communication stream when one is given), so the
  parameter gradients leave the backward pass already averaged;
* on its input: the gradient flowing on to the layer below is made to *depend* on the
  all-reduce of the layer above (``mx.depends``), which makes the scheduler issue that
  all-reduce while the backward pass is still running, one layer ahead of where it is
  needed, so communication overlaps the next layer's backward computation.

Only the layers are reduced this way; the trainer averages the remaining parameters
(embeddings, pooler, head) after the backward pass as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

_OVERLAP_CLASSES: dict[type, type] = {}


class BackwardReducer:
    """What the hooked layers share while one training step is traced."""

    def __init__(self, group: mx.distributed.Group, stream: mx.Stream | None = None):
        self.group = group
        self.stream = stream
        self.active = False
        self.reduced: dict[int, mx.array] = {}

    def start(self, active: bool) -> None:
        """Call before tracing the loss: ``active`` says whether this step all-reduces."""
        self.active = active
        self.reduced = {}

    def all_reduce(self, grads: list[mx.array]) -> tuple[list[mx.array], mx.array]:
        """Mean over ranks of ``grads`` as one float32 all-reduce; also returns the reduced
        flat array (for dependencies)."""
        flat = mx.concatenate([g.astype(mx.float32).reshape(-1) for g in grads])
        total = mx.distributed.all_sum(flat, group=self.group, stream=self.stream)
        mean = total / self.group.size()
        pieces, offset = [], 0
        for g in grads:
            pieces.append(mean[offset : offset + g.size].reshape(g.shape).astype(g.dtype))
            offset += g.size
        return pieces, mean


def _hooked_call(layer: nn.Module, original_call, index: int, args: tuple, kwargs: dict):
    reducer: BackwardReducer = layer._mlxbert_reducer
    if not reducer.active:
        return original_call(layer, *args, **kwargs)
    items = tree_flatten(layer.trainable_parameters())
    if not items:
        return original_call(layer, *args, **kwargs)

    def params_identity(flat: list[mx.array]) -> list[mx.array]:
        return list(flat)

    params_hook = mx.custom_function(params_identity)

    @params_hook.vjp
    def reduce_params(_primals, cotangents, _outputs):
        pieces, mean = reducer.all_reduce(list(cotangents))
        reducer.reduced[index] = mean
        return (pieces,)

    def input_identity(x: mx.array) -> mx.array:
        return x

    input_hook = mx.custom_function(input_identity)

    @input_hook.vjp
    def gate_input(_primals, cotangent, _outputs):
        # The layer below starts its backward pass only once the layer above's all-reduce
        # has been issued (it has run by then: it overlapped this layer's backward pass).
        above = reducer.reduced.get(index + 1)
        return cotangent if above is None else mx.depends(cotangent, above)

    hooked = params_hook([v for _, v in items])
    layer.update(tree_unflatten([(k, v) for (k, _), v in zip(items, hooked)]))
    if args and isinstance(args[0], mx.array) and mx.issubdtype(args[0].dtype, mx.floating):
        args = (input_hook(args[0]), *args[1:])
    return original_call(layer, *args, **kwargs)


def _overlap_class(cls: type) -> type:
    if cls in _OVERLAP_CLASSES:
        return _OVERLAP_CLASSES[cls]
    original_call = cls.__call__

    def __call__(self, *args, **kwargs):
        return _hooked_call(self, original_call, self._mlxbert_layer_index, args, kwargs)

    hooked = type(f"GradReduced{cls.__name__}", (cls,), {"__call__": __call__})
    hooked._mlxbert_reduce_original = cls
    _OVERLAP_CLASSES[cls] = hooked
    return hooked


def enable_overlapped_reduction(
    model: nn.Module, layers: Sequence[nn.Module], reducer: BackwardReducer
) -> set[str]:
    """Hook ``layers`` (in forward order) for in-backward all-reduce; returns the dotted paths
    of the parameters they reduce (the trainer must not average them again)."""
    paths_of = {id(module): name for name, module in model.named_modules()}
    reduced_paths: set[str] = set()
    for index, layer in enumerate(layers):
        prefix = paths_of.get(id(layer))
        if prefix is None:
            raise ValueError("overlapped gradient reduction: a layer is not part of the model")
        layer._mlxbert_reducer = reducer
        layer._mlxbert_layer_index = index
        if not hasattr(type(layer), "_mlxbert_reduce_original"):
            layer.__class__ = _overlap_class(type(layer))
        for key, _ in tree_flatten(layer.trainable_parameters()):
            reduced_paths.add(f"{prefix}.{key}" if prefix else key)
    return reduced_paths


def split_reduced(grads: Any, reduced_paths: set[str]) -> tuple[list, list]:
    """(already reduced items, items still to average) of a gradient tree, as flat lists."""
    done, rest = [], []
    for key, value in tree_flatten(grads):
        (done if key in reduced_paths else rest).append((key, value))
    return done, rest
