"""Helpers the head tests share (importable by name: see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim


def adam_steps(
    model: nn.Module, loss_fn: Callable[[nn.Module], mx.array], steps: int, lr: float
) -> list[float]:
    """``steps`` Adam updates of ``model`` on ``loss_fn(model)``; returns the losses."""
    optimizer = optim.Adam(learning_rate=lr)
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grad(model)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
        losses.append(loss.item())
    return losses
