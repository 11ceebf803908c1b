"""Combining the predictions of several models (CV folds, different runs).

``mean``: weighted mean of probabilities / values. ``rank``: each model's scores are replaced
by their normalised ranks (0..1, per column) before the weighted mean — robust to models whose
probabilities are scaled differently; for a binary task the decision then keeps the models'
average share of positive predictions, since a rank has no natural 0.5 threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlxbert_heads.metrics import rankdata

from .errors import InputError

METHODS = ("mean", "rank")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of each column scaled to [0, 1] (ties share their mean rank)."""
    out = np.empty_like(values, dtype=np.float64)
    n = values.shape[0]
    for j in range(values.shape[1]):
        r = rankdata(values[:, j])
        out[:, j] = (r - 1) / (n - 1) if n > 1 else 0.5
    return out


def check_weights(weights: Sequence[float] | None, n_models: int) -> np.ndarray:
    if weights is None:
        return np.full(n_models, 1.0 / n_models)
    w = np.asarray(list(weights), dtype=np.float64)
    if len(w) != n_models:
        raise InputError(
            f"--weights has {len(w)} values for {n_models} models: one per --model (a CV "
            "run's folds count as one model; --each-fold counts them one by one)"
        )
    if (w < 0).any() or w.sum() <= 0:
        raise InputError("--weights must be non-negative and not all zero")
    return w / w.sum()


def check_method(method: str, task: str | None = None) -> None:
    """An ensemble method that applies to ``task`` (checked before any model runs)."""
    if method not in METHODS:
        raise InputError(f"unknown ensemble method {method!r}; use {' or '.join(METHODS)}")
    if method == "rank" and task == "regression":
        raise InputError("rank averaging applies to classification scores, not regression values")


def combine(
    predictions: Sequence[np.ndarray],
    *,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    task: str | None = None,
) -> tuple[np.ndarray, float | None]:
    """(combined predictions, binary threshold or None) for same-shaped model outputs.

    The threshold is 0.5 for ``mean``; for ``rank`` on a binary task it is the quantile that
    keeps the models' average positive rate (see the module doc).
    """
    check_method(method, task)
    if not predictions:
        raise InputError("no predictions to combine")
    shapes = {np.shape(p) for p in predictions}
    if len(shapes) != 1:
        raise InputError(f"models disagree on the prediction shape: {sorted(shapes)}")
    w = check_weights(weights, len(predictions))
    stacked = [np.asarray(p, dtype=np.float64) for p in predictions]
    if method == "mean" or len(stacked) == 1:
        return sum(wi * p for wi, p in zip(w, stacked)), 0.5
    shape = stacked[0].shape
    ranked = [_ranks(p.reshape(shape[0], -1)).reshape(shape) for p in stacked]
    combined = sum(wi * r for wi, r in zip(w, ranked))
    threshold = None
    if task == "binary":
        positive_rate = float(sum(wi * (p >= 0.5).mean() for wi, p in zip(w, stacked)))
        threshold = float(np.quantile(combined, 1.0 - positive_rate)) if positive_rate > 0 else 1.1
    return combined, threshold


__all__ = ["METHODS", "check_method", "check_weights", "combine"]
