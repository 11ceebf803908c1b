"""The typed summary of a run folder that every report section reads.

Two kinds of run folders become the same summary: a GLUE fine-tuning output
(``finetune.json``, one fit per seed) and a table training output of ``mlxbert train`` /
``mlxbert kaggle run`` (``metrics.json``, one fit per fold or a hold-out fit). Every number in
it is read from the run's files; nothing is recomputed except where a section says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CLASSIFICATION = ("binary", "multiclass", "ordinal")


@dataclass
class FitCurve:
    """One fit's epochs (a fold, a seed, the hold-out model), read from its ``log.json``."""

    name: str
    epochs: list[int]
    loss: list[float]
    scores: list[float | None]
    metric: str | None
    best_epoch: int | None
    train_seconds: list[float]
    eval_seconds: list[float]
    learning_rate: list[float]


@dataclass
class PartScore:
    """The best-epoch metrics of one fold or seed."""

    name: str
    metrics: dict[str, float]
    best_epoch: int | None = None
    rows: int | None = None


@dataclass
class Predictions:
    """Validation (or out-of-fold) predictions with their truth, one row per example.

    task:        ``binary``, ``multiclass``, ``ordinal``, ``multilabel`` or ``regression``.
    labels:      class or label names; target names for regression.
    truth:       class ids (n,), 0/1 rows (n, L) or values (n, T).
    predicted:   the run's own decisions, in the same form as ``truth``.
    proba:       the run's probabilities (n, C) (binary: C = 2), or None.
    logits:      raw head outputs behind ``proba`` (binary: (n,); others (n, C)), or None.
    temperature: per row, the temperature of the model that predicted it (1.0: none).
    thresholds:  fitted decision thresholds on P(positive) (binary), by fit (a fold, a seed);
                 empty when every model decides at 0.5.
    scale:       regression: ``"log1p"`` when the run trained on log(1 + y).
    reference:   the run's metrics for exactly these predictions (from its metrics file), which
                 what the report counts from them must equal; ``reference_source`` names it.
    """

    task: str
    source: str
    labels: list[str]
    truth: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray | None = None
    logits: np.ndarray | None = None
    temperature: np.ndarray | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    scale: str | None = None
    texts: list[str] | None = None
    ids: list[str] | None = None
    reference: dict[str, float] = field(default_factory=dict)
    reference_source: str = ""

    def __len__(self) -> int:
        return len(self.truth)

    @property
    def is_classification(self) -> bool:
        return self.task in CLASSIFICATION


@dataclass
class RunSummary:
    """What a report shows about one run folder."""

    kind: str  # "glue" | "cv" | "holdout"
    path: Path
    title: str
    task: str
    metric: str
    greater_is_better: bool
    score: float
    metrics: dict[str, float]
    metrics_source: str
    parts: list[PartScore] = field(default_factory=list)
    parts_title: str = ""
    part_mean: dict[str, float] = field(default_factory=dict)
    part_std: dict[str, float] = field(default_factory=dict)
    curves: list[FitCurve] = field(default_factory=list)
    predictions: Predictions | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float | int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


__all__ = ["CLASSIFICATION", "FitCurve", "PartScore", "Predictions", "RunSummary"]
