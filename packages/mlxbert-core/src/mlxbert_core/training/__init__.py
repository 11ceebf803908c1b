"""Training engine of mlxbert: a compiled AdamW step with accumulation, clipping, mixed
precision, gradient checkpointing, length-bucketed batches and data parallelism.

Example::

    from mlxbert_core.training import TrainingConfig, Trainer, batch_iterator

    batches = batch_iterator({"input_ids": ids, "labels": labels}, batch_size=32, seed=0)
    cfg = TrainingConfig(learning_rate=2e-5, warmup_ratio=0.06, epochs=3, batch_size=32)
    trainer = Trainer(model, loss_fn, cfg, total_steps=cfg.optimizer_steps(len(batches)))
    for epoch in range(cfg.epochs):
        stats = trainer.train_epoch(batches)   # {"loss", "steps", "samples_per_s", ...}

Precision policy: float32 master weights and optimizer state; forward/backward in
``compute_dtype`` with gradients returned in float32 (see :mod:`.precision`).
"""

from .clipping import clip_grad_norm, global_norm
from .config import TrainingConfig
from .data import BatchIterator, LengthBucketSampler, batch_iterator, collate
from .distributed import is_main_process, rank, world_size
from .grad_checkpoint import (
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
    find_layers,
)
from .optimizer import build_optimizer, is_decayed
from .precision import DynamicLossScale
from .schedules import build_schedule
from .trainer import Trainer

__all__ = [
    "BatchIterator",
    "DynamicLossScale",
    "LengthBucketSampler",
    "Trainer",
    "TrainingConfig",
    "batch_iterator",
    "build_optimizer",
    "build_schedule",
    "clip_grad_norm",
    "collate",
    "disable_gradient_checkpointing",
    "enable_gradient_checkpointing",
    "find_layers",
    "global_norm",
    "is_decayed",
    "is_main_process",
    "rank",
    "world_size",
]
