"""Learning-rate schedules: linear warm-up, then linear, cosine or constant.

Built from MLX's own schedule pieces (``optim.linear_schedule``, ``optim.cosine_decay``,
``optim.join_schedules``) so the optimizer evaluates them inside the compiled step. The
schedule is indexed by the optimizer's step counter, i.e. by *optimizer updates*, not by
micro-batches.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.optimizers as optim

from .config import SCHEDULES

Schedule = Callable[[mx.array], mx.array]


def _constant(value: float) -> Schedule:
    def schedule(step: mx.array) -> mx.array:
        return mx.full(mx.array(step).shape, value, dtype=mx.float32)

    return schedule


def build_schedule(
    learning_rate: float,
    total_steps: int | None,
    *,
    warmup_steps: int = 0,
    kind: str = "linear",
    min_lr_ratio: float = 0.0,
) -> Schedule:
    """Return ``step -> learning rate`` for ``total_steps`` optimizer updates.

    * warm-up: ``lr * (step / warmup_steps)`` for ``step < warmup_steps`` (starts at 0);
    * ``"linear"``: from ``lr`` at the end of warm-up down to ``min_lr_ratio * lr`` at
      ``total_steps`` (and held there afterwards);
    * ``"cosine"``: half cosine over the same span to ``min_lr_ratio * lr``;
    * ``"constant"``: ``lr`` after warm-up (``total_steps`` may be ``None``).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"Unknown schedule {kind!r}: use one of {', '.join(SCHEDULES)}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if kind != "constant":
        if total_steps is None:
            raise ValueError(
                f"The {kind!r} schedule needs total_steps (the number of optimizer updates): "
                "pass Trainer(..., total_steps=cfg.optimizer_steps(len(batches))) or use "
                "schedule='constant'."
            )
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if warmup_steps > total_steps:
            raise ValueError(
                f"warmup_steps ({warmup_steps}) is larger than total_steps ({total_steps})"
            )
    end_lr = learning_rate * min_lr_ratio
    decay_steps = 0 if total_steps is None else total_steps - warmup_steps
    if kind == "constant" or decay_steps == 0:
        main = _constant(learning_rate)
    elif kind == "linear":
        main = optim.linear_schedule(learning_rate, end_lr, decay_steps)
    else:
        main = optim.cosine_decay(learning_rate, decay_steps, end_lr)
    if warmup_steps == 0:
        return main
    warmup = optim.linear_schedule(0.0, learning_rate, warmup_steps)
    return optim.join_schedules([warmup, main], [warmup_steps])
