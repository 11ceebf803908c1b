"""Decision thresholds for binary and multilabel targets, fitted on validation or
out-of-fold predictions.

A fixed 0.5 cut fails on imbalanced labels: a label that is positive in 2% of the rows rarely
gets a probability above 0.5, so a multilabel model predicts nothing. Training therefore
chooses the threshold that maximises the task's score on held-out predictions -- accuracy
when that is the metric, F1 otherwise -- per label for multilabel targets, with one pooled
threshold for labels too rare to fit alone (mlxbert-heads' ``choose_thresholds``). The model
folder (and a CV run's ``metrics.json``) keeps it, and prediction uses it.
"""

from __future__ import annotations

import numpy as np

from mlxbert_heads.calibration import MIN_POSITIVES, choose_threshold, choose_thresholds

from .scoring import score
from .targets import TargetSpec

#: Tasks whose predictions are cut at a threshold.
THRESHOLD_TASKS = ("binary", "multilabel")


def criterion_for(metric: str) -> str:
    """The threshold criterion that serves ``metric``."""
    return "accuracy" if metric in ("accuracy", "subset_accuracy") else "f1"


def fit_thresholds(
    spec: TargetSpec, y: np.ndarray, raw: np.ndarray, metric: str
) -> float | list[float] | None:
    """The fitted threshold(s) of ``spec``'s raw predictions against encoded targets ``y``,
    or None for tasks without thresholds (or a single class to learn from)."""
    criterion = criterion_for(metric)
    if spec.task == "binary":
        truth = np.asarray(y).reshape(-1).astype(np.int64)
        if np.unique(truth).size < 2:
            return None
        return choose_threshold(np.asarray(raw).reshape(-1), truth, criterion=criterion)
    if spec.task == "multilabel":
        truth = np.asarray(y).reshape(len(raw), -1).astype(np.int64)
        proba = np.asarray(raw, dtype=np.float64).reshape(truth.shape)
        return choose_thresholds(proba, truth, criterion=criterion, min_positives=MIN_POSITIVES)
    return None


def score_with_thresholds(
    spec: TargetSpec, y: np.ndarray, raw: np.ndarray, metric: str
) -> tuple[dict[str, float], float | list[float] | None]:
    """(metrics at the fitted thresholds, the thresholds); the metrics also hold
    ``<metric>_at_0.5``, the score a plain 0.5 cut would give."""
    threshold = fit_thresholds(spec, y, raw, metric)
    if threshold is None:
        return score(spec, y, raw), None
    metrics = score(spec, y, raw, threshold=np.asarray(threshold))
    plain = score(spec, y, raw)
    if metric in plain:
        metrics[f"{metric}_at_0.5"] = plain[metric]
    return metrics, threshold


def combined_threshold(
    thresholds: list[float | list[float] | None], weights: np.ndarray
) -> float | np.ndarray:
    """One threshold for a weighted mean of models' probabilities: the weighted mean of
    their thresholds (0.5 where a model has none)."""
    values = [np.asarray(0.5 if t is None else t, dtype=np.float64) for t in thresholds]
    return sum(w * v for w, v in zip(weights, values))


__all__ = [
    "THRESHOLD_TASKS",
    "combined_threshold",
    "criterion_for",
    "fit_thresholds",
    "score_with_thresholds",
]
