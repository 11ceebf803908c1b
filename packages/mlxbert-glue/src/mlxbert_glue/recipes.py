"""Default fine-tuning recipes per GLUE task.

The numbers follow the GLUE recipe published with M2-BERT (Fu et al., 2023, "Monarch Mixer"),
itself MosaicBERT's: max length 128, AdamW with betas (0.9, 0.98) and eps 1e-6, linear decay
after 6% warm-up, per-task learning rate / weight decay / epochs / batch size, several seeds
for the small tasks, and RTE, MRPC and STS-B started from an MNLI checkpoint when one is
available (``finetune(init_from=...)``). WNLI is not part of that recipe; it gets a short,
conservative run (the GLUE dev set is adversarial, so a majority baseline is hard to beat).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mlxbert_core.training import TrainingConfig

from .task_model import DEFAULT_MAX_LENGTH
from .tasks import get_task

#: The smallest value each count of a recipe may take.
_MINIMUMS = {
    "epochs": 1,
    "batch_size": 1,
    "eval_batch_size": 1,
    "grad_accum_steps": 1,
    "max_length": 2,
}


@dataclass
class Recipe:
    """Hyper-parameters of one GLUE fine-tuning run (one or several seeds)."""

    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    epochs: int = 3
    batch_size: int = 32
    max_length: int = DEFAULT_MAX_LENGTH
    warmup_ratio: float = 0.06
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    seeds: tuple[int, ...] = (19,)
    grad_accum_steps: int = 1
    compute_dtype: str = "float32"
    gradient_checkpointing: bool = False
    compile: bool = True
    eval_batch_size: int = 64
    init_from_mnli: bool = False  # the recipe starts this task from an MNLI checkpoint
    pooling: str | None = None  # None: the architecture's default for classification
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be >= {low}, got {getattr(self, name)}"
            for name, low in _MINIMUMS.items()
            if getattr(self, name) < low
        ]
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.seeds:
            problems.append("seeds must name at least one seed")
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **overrides: Any) -> Recipe:
        """A copy with ``overrides`` applied; ``None`` values mean "keep the default"."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown recipe fields {unknown}; known: {sorted(known)}")
        values = {k: v for k, v in overrides.items() if v is not None}
        if "seeds" in values:
            seeds = values["seeds"]
            values["seeds"] = (int(seeds),) if isinstance(seeds, int) else tuple(seeds)
        return dataclasses.replace(self, **values)

    def training_config(self, seed: int) -> TrainingConfig:
        """The core engine's settings for one seed (the fields both records share)."""
        shared = {f.name for f in dataclasses.fields(TrainingConfig)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in shared}
        return TrainingConfig(**values, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        out["seeds"] = list(self.seeds)
        return out


_SEEDS5 = (19, 8364, 717, 10536, 90166)


def _from_mnli(learning_rate: float, epochs: int, batch_size: int) -> Recipe:
    """The recipe of the small tasks started from an MNLI checkpoint (RTE, MRPC, STS-B):
    five seeds and weight decay 0.01."""
    return Recipe(
        learning_rate=learning_rate,
        weight_decay=0.01,
        epochs=epochs,
        batch_size=batch_size,
        seeds=_SEEDS5,
        init_from_mnli=True,
    )


#: Per-task defaults (M2-BERT-base GLUE recipe).
RECIPES: dict[str, Recipe] = {
    "mnli": Recipe(learning_rate=5e-5, weight_decay=5e-6, epochs=3, batch_size=48),
    "qnli": Recipe(learning_rate=5e-5, weight_decay=1e-6, epochs=10, batch_size=16),
    "qqp": Recipe(learning_rate=3e-5, weight_decay=0.01, epochs=10, batch_size=16),
    "sst2": Recipe(
        learning_rate=3e-5, weight_decay=3e-6, epochs=3, batch_size=16, seeds=_SEEDS5[:3]
    ),
    "cola": Recipe(
        learning_rate=5e-5, weight_decay=5e-6, epochs=10, batch_size=32, seeds=_SEEDS5[:4]
    ),
    "rte": _from_mnli(5e-5, epochs=6, batch_size=16),
    "mrpc": _from_mnli(5e-5, epochs=10, batch_size=32),
    "stsb": _from_mnli(7e-5, epochs=10, batch_size=32),
    "wnli": Recipe(learning_rate=1e-5, weight_decay=0.01, epochs=3, batch_size=16),
}


def default_recipe(task: str, **overrides: Any) -> Recipe:
    """The task's default recipe, with ``overrides`` (``None`` = keep the default)."""
    return RECIPES[get_task(task).name].replace(**overrides)
