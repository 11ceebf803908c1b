"""Helpers the LoRA tests share (importable by name: see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim


def max_diff(a: mx.array, b: mx.array) -> float:
    return float(mx.max(mx.abs(a - b)).item())


def adam_steps(
    model: nn.Module, loss_fn: Callable[[nn.Module], mx.array], steps: int, lr: float = 1e-2
) -> list[float]:
    """``steps`` Adam updates of ``model``'s trainable parameters on ``loss_fn(model)``;
    returns the losses."""
    step = nn.value_and_grad(model, loss_fn)
    opt = optim.Adam(learning_rate=lr)
    losses = []
    for _ in range(steps):
        loss, grads = step(model)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        losses.append(loss.item())
    return losses
