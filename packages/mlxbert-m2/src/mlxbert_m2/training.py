"""Optimizer set-up for fine-tuning M2-BERT."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.optimizers as optim

LearningRate = float | Callable[[mx.array], mx.array]


def is_filter_parameter(path: str, _array: mx.array | None = None) -> bool:
    """True for the parameters that generate the implicit long-convolution kernels
    (``pos_emb.z`` and the ``implicit_filter`` / ``implicit_filter_rev`` MLPs, ``freq``
    included)."""
    return ".pos_emb." in path or ".implicit_filter" in path


def make_optimizer(
    learning_rate: LearningRate,
    *,
    filter_learning_rate: LearningRate = 1e-5,
    weight_decay: float = 0.01,
) -> optim.Optimizer:
    """AdamW with a separate, small learning rate for the implicit filter parameters.

    The kernels come from ``sin(10 * ...)`` chains, so a step that suits the projections moves
    them chaotically; the reference likewise trains the filters' positional features at
    ``hyena_lr_pos_emb`` = 1e-5. The filter group gets no weight decay.
    """
    return optim.MultiOptimizer(
        [
            optim.AdamW(learning_rate=filter_learning_rate, weight_decay=0.0),
            optim.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        ],
        [is_filter_parameter],
    )
