"""Mixed-precision policy of the training engine.

Policy (``TrainingConfig.compute_dtype``):

* **Master weights stay float32.** The model's parameters and the AdamW moments are never
  stored in a reduced dtype, so small updates (lr 2e-5 times a gradient) are not lost to
  bfloat16's 8-bit mantissa.
* **Compute in the chosen dtype.** Inside the (compiled) step every floating-point parameter
  is cast to ``compute_dtype`` before the forward pass; forward and backward run in that
  dtype. The cast is part of the differentiated function, so the gradient flows back through
  ``astype`` and arrives **in float32**, shaped like the master weights.
* **Updates in float32**: gradient averaging across processes, clipping and AdamW all run on
  float32 gradients and weights.
* The loss returned by ``loss_fn`` is cast to float32 before it is reported or scaled; loss
  functions should compute their reductions (log-softmax, mean) in float32, which the heads of
  mlxbert do.
* ``float16`` additionally uses a dynamic loss scale (:class:`DynamicLossScale`): the loss is
  multiplied by ``scale`` before the backward pass and gradients divided by it afterwards; a
  step with non-finite gradients is skipped and the scale halved, and the scale doubles after
  ``growth_interval`` good steps. ``bfloat16`` has float32's exponent range and needs none.

Frozen (non-trainable) floating-point parameters are cast the same way for compute; integer
parameters (quantized weights, ``uint32``) are left alone.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map


def cast_floating(tree: Any, dtype: mx.Dtype) -> Any:
    """Cast every floating-point array of ``tree`` to ``dtype`` (other arrays unchanged)."""

    def cast(x):
        if isinstance(x, mx.array) and mx.issubdtype(x.dtype, mx.floating) and x.dtype != dtype:
            return x.astype(dtype)
        return x

    return tree_map(cast, tree)


def all_finite(tree: Any) -> mx.array:
    """Scalar bool: every element of every array in ``tree`` is finite."""
    flags = [mx.all(mx.isfinite(x)) for x in _leaves(tree)]
    if not flags:
        return mx.array(True)
    return mx.all(mx.stack(flags))


def _leaves(tree: Any) -> list[mx.array]:
    return [v for _, v in tree_flatten(tree) if isinstance(v, mx.array)]


class DynamicLossScale:
    """Loss scaling for float16 compute (the scheme of ``torch.amp.GradScaler``).

    The scale and the count of consecutive good steps are MLX arrays so they can live in the
    compiled step's state; all decisions are made with ``mx.where`` inside the graph.
    """

    def __init__(
        self, init_scale: float = 2.0**15, growth_interval: int = 2000, max_scale: float = 2.0**24
    ):
        self.growth_interval = int(growth_interval)
        self.max_scale = float(max_scale)
        self.state = {
            "scale": mx.array(init_scale, dtype=mx.float32),
            "good_steps": mx.array(0, dtype=mx.int32),
        }

    @property
    def scale(self) -> mx.array:
        return self.state["scale"]

    def update(self, finite: mx.array) -> None:
        """Halve on overflow; double after ``growth_interval`` consecutive finite steps."""
        scale, good = self.state["scale"], self.state["good_steps"]
        good = mx.where(finite, good + 1, mx.zeros_like(good))
        grow = good >= self.growth_interval
        scale = mx.where(finite, mx.where(grow, scale * 2.0, scale), scale * 0.5)
        self.state["scale"] = mx.minimum(scale, self.max_scale)
        self.state["good_steps"] = mx.where(grow, mx.zeros_like(good), good)
