"""AdamW with the BERT weight-decay rule.

Weight decay applies to weight *matrices* (and embedding tables) only. A parameter is **not**
decayed when any of these holds:

* it has fewer than 2 dimensions (biases, LayerNorm/RMSNorm scales and shifts, scalars);
* its name ends with ``bias``;
* a component of its path contains ``norm`` (``LayerNorm``, ``layer_norm``, ``norm1``, ...).

This is the rule of the original BERT fine-tuning code and of transformers' examples
(``no_decay = ["bias", "LayerNorm.weight"]``), generalised to any naming.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_unflatten

from .config import TrainingConfig
from .schedules import Schedule


def is_decayed(path: str, weight: mx.array) -> bool:
    """True when weight decay applies to the parameter at ``path`` (see module docstring)."""
    if weight.ndim < 2:
        return False
    parts = path.split(".")
    if parts[-1].endswith("bias"):
        return False
    return not any("norm" in part.lower() for part in parts)


class GroupedOptimizer(optim.MultiOptimizer):
    """``MultiOptimizer`` whose groups' updates are joined by parameter name.

    MLX's own join (``tree_merge``) fails when one group's share of a list of modules ends in
    modules it has no parameters of while the other group's list is shorter: M2-BERT's filter
    MLPs (decayed weights, undecayed biases and frequencies) hit it. Flattening each group's
    update and rebuilding one tree gives the same result for every model.
    """

    def apply_gradients(self, gradients: dict, parameters: dict):
        updates: dict[str, mx.array] = {}
        for optimizer, part in zip(self.optimizers, self._split_dictionary(gradients)):
            updates.update(tree_flatten(optimizer.apply_gradients(part, parameters)))
        return tree_unflatten(list(updates.items()))


def build_optimizer(config: TrainingConfig, schedule: Schedule) -> optim.Optimizer:
    """AdamW on the schedule; two parameter groups when ``weight_decay > 0``."""

    def adamw(weight_decay: float) -> optim.AdamW:
        # Bias-corrected moments, as PyTorch's AdamW (and so the transformers Trainer) has
        # them; MLX's AdamW leaves them uncorrected unless asked, which makes the steps of
        # the first few thousand updates larger than PyTorch's (1.5x still after 625).
        return optim.AdamW(
            learning_rate=schedule,
            betas=list(config.adam_betas),
            eps=config.adam_eps,
            weight_decay=weight_decay,
            bias_correction=True,
        )

    if config.weight_decay == 0:
        return adamw(0.0)
    # MultiOptimizer routes each parameter to the first optimizer whose filter accepts it;
    # the last one is the fallback (no decay).
    return GroupedOptimizer([adamw(config.weight_decay), adamw(0.0)], [is_decayed])
