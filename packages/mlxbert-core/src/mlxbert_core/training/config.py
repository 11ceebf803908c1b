"""Hyper-parameters of a training run (:class:`TrainingConfig`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

SCHEDULES = ("linear", "cosine", "constant")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TrainingConfig:
    """Everything the :class:`~mlxbert_core.training.Trainer` needs besides the model and loss.

    Step counts: a *micro-step* is one call of ``Trainer.step`` on one batch; an *optimizer step*
    (an update) happens every ``grad_accum_steps`` micro-steps. Warm-up, decay and ``total_steps``
    count optimizer steps. ``batch_size`` is the micro-batch size per process; the effective
    batch per update is ``batch_size * grad_accum_steps * world_size``.

    Attributes:
        learning_rate: peak learning rate (reached at the end of warm-up).
        weight_decay: decoupled (AdamW) weight decay, applied to matrices only: biases,
            normalization weights and every other parameter with fewer than 2 dimensions are
            not decayed (the rule of BERT's original recipe and of transformers' examples).
        warmup_ratio: fraction of the optimizer steps spent warming up linearly from 0.
        warmup_steps: warm-up length in optimizer steps; when set it wins over ``warmup_ratio``.
        schedule: ``"linear"`` (decay to ``min_lr_ratio * lr`` at the last step), ``"cosine"``
            (half cosine to ``min_lr_ratio * lr``) or ``"constant"`` (after warm-up).
        min_lr_ratio: final learning rate as a fraction of the peak (default 0).
        epochs: passes over the data (used by callers that loop over epochs).
        batch_size: examples per micro-batch on each process.
        grad_accum_steps: micro-batches whose gradients are averaged before one update.
        max_grad_norm: clip the global gradient L2 norm to this value; ``None`` or 0 disables.
        adam_betas, adam_eps: AdamW moments.
        compute_dtype: dtype of the forward/backward pass; master weights and optimizer state
            stay float32 (see :mod:`mlxbert_core.training.precision`).
        gradient_checkpointing: recompute each encoder layer in the backward pass instead of
            storing its activations (less memory, ~30% more compute).
        grad_reduce_dtype: data parallel only: the dtype gradients travel in for the
            all-reduce (``None``: their own, float32). ``"bfloat16"`` halves the traffic; the
            averaged gradient is cast back to float32 before clipping and the update.
        communication_stream: data parallel only: run the gradient all-reduces on a stream
            of their own, so the backend may overlap them with other work.
        overlap_grad_reduce: data parallel only: all-reduce each transformer layer's gradients
            inside the backward pass, so communication overlaps the computation of the layers
            below (see :mod:`mlxbert_core.training.overlap`). Needs ``grad_accum_steps=1``
            and no gradient checkpointing.
        compile: run the whole step (forward, backward, clipping, update) as one ``mx.compile``
            graph. Turn off to debug with Python prints inside the model.
        seed: seeds MLX's random generator (dropout) and the data order.
        log_every: refresh the progress bar loss every this many micro-steps (reading the loss
            forces a synchronisation, so not every step).
    """

    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None
    schedule: str = "linear"
    min_lr_ratio: float = 0.0
    epochs: int = 3
    batch_size: int = 32
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    compute_dtype: str = "float32"
    gradient_checkpointing: bool = False
    grad_reduce_dtype: str | None = None
    communication_stream: bool = False
    overlap_grad_reduce: bool = False
    compile: bool = True
    seed: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            problems.append(
                f"compute_dtype={self.compute_dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}"
            )
        if self.grad_reduce_dtype is not None and self.grad_reduce_dtype not in COMPUTE_DTYPES:
            problems.append(
                f"grad_reduce_dtype={self.grad_reduce_dtype!r}: use None or one of "
                f"{', '.join(COMPUTE_DTYPES)}"
            )
        if not self.learning_rate > 0:
            problems.append(f"learning_rate={self.learning_rate}: must be > 0")
        if self.weight_decay < 0:
            problems.append(f"weight_decay={self.weight_decay}: must be >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append(f"warmup_ratio={self.warmup_ratio}: must be in [0, 1)")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warmup_steps={self.warmup_steps}: must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")
        for name in ("epochs", "batch_size", "grad_accum_steps", "log_every"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)}: must be >= 1")
        if self.max_grad_norm is not None and self.max_grad_norm < 0:
            problems.append(f"max_grad_norm={self.max_grad_norm}: must be >= 0 (0 or None: off)")
        if problems:
            raise ValueError("Invalid TrainingConfig:\n  " + "\n  ".join(problems))
        self.adam_betas = tuple(self.adam_betas)

    def optimizer_steps(self, batches_per_epoch: int, epochs: int | None = None) -> int:
        """Number of optimizer updates for ``epochs`` (default ``self.epochs``) passes over
        ``batches_per_epoch`` micro-batches: what to pass as ``Trainer(total_steps=...)``."""
        epochs = self.epochs if epochs is None else epochs
        return math.ceil(batches_per_epoch / self.grad_accum_steps) * epochs

    def resolved_warmup_steps(self, total_steps: int) -> int:
        """Warm-up length in optimizer steps (``warmup_steps`` or ``warmup_ratio * total``)."""
        if self.warmup_steps is not None:
            return int(self.warmup_steps)
        return math.ceil(self.warmup_ratio * total_steps)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TrainingConfig fields: {unknown}; known: {sorted(known)}")
        return cls(**values)
