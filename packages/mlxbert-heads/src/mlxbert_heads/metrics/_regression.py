"""Regression and forecasting metrics. Multi-output (n, k) inputs are averaged uniformly over
outputs, as scikit-learn's ``multioutput="uniform_average"``."""

from __future__ import annotations

import warnings

import numpy as np

from ._validation import regression_pair


def mse(y_true, y_pred) -> float:
    """Mean squared error."""
    a, b = regression_pair(y_true, y_pred)
    return float(np.mean(np.mean((a - b) ** 2, axis=0)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error (per output, then averaged)."""
    a, b = regression_pair(y_true, y_pred)
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=0))))


def rmsle(y_true, y_pred) -> float:
    """Root mean squared error of log1p values; targets and predictions must exceed -1."""
    a, b = regression_pair(y_true, y_pred)
    if np.any(a <= -1) or np.any(b <= -1):
        raise ValueError(
            "rmsle needs y_true and y_pred greater than -1 (it takes log1p); clip predictions "
            "or use rmse"
        )
    return rmse(np.log1p(a), np.log1p(b))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    a, b = regression_pair(y_true, y_pred)
    return float(np.mean(np.mean(np.abs(a - b), axis=0)))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error as a fraction (0.1 = 10 %), |y - ŷ| / max(|y|, eps) with
    eps the float64 machine epsilon, so zero targets give huge but finite values (scikit-learn's
    convention)."""
    a, b = regression_pair(y_true, y_pred)
    eps = np.finfo(np.float64).eps
    return float(np.mean(np.mean(np.abs(a - b) / np.maximum(np.abs(a), eps), axis=0)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination. A constant target gives 1.0 for a perfect prediction and
    0.0 otherwise; fewer than two samples give nan (with a warning), as scikit-learn does."""
    a, b = regression_pair(y_true, y_pred)
    if a.shape[0] < 2:
        warnings.warn("r2 is not well-defined with fewer than two samples", stacklevel=2)
        return float("nan")
    numerator = np.sum((a - b) ** 2, axis=0)
    denominator = np.sum((a - a.mean(axis=0)) ** 2, axis=0)
    scores = np.ones(a.shape[1])
    valid = denominator != 0
    scores[valid] = 1.0 - numerator[valid] / denominator[valid]
    scores[~valid & (numerator != 0)] = 0.0
    return float(scores.mean())


def directional_accuracy(y_true, y_pred, *, y_last=None) -> float:
    """Fraction of steps where the forecast moves in the same direction as the truth.

    Without ``y_last`` the directions are the signs of consecutive differences along the
    last axis (a 1-D input is one series; (n, horizon) inputs are n series of horizon ≥ 2).
    With ``y_last`` (n,), the last observed value before each forecast window, every step is
    compared with the previous *true* value: sign(y_t - y_{t-1}) against sign(ŷ_t - y_{t-1}),
    with y_0 = y_last, so a horizon of 1 works too. A flat truth (sign 0) counts as matched
    only by a flat forecast.
    """
    a, b = regression_pair(y_true, y_pred)
    if np.ndim(y_true) == 1:
        a, b = a.T, b.T  # one series along the samples axis
    if y_last is None:
        if a.shape[1] < 2:
            raise ValueError(
                "directional_accuracy needs at least two steps per series, or pass y_last "
                "(the last observed value before each forecast)"
            )
        truth_dir = np.sign(np.diff(a, axis=1))
        pred_dir = np.sign(np.diff(b, axis=1))
    else:
        last = np.asarray(y_last, dtype=np.float64).reshape(-1)
        if last.shape[0] != a.shape[0]:
            raise ValueError(f"y_last has {last.shape[0]} values but there are {a.shape[0]} series")
        if not np.all(np.isfinite(last)):
            raise ValueError("y_last contains NaN or infinite values")
        previous = np.concatenate([last[:, None], a[:, :-1]], axis=1)
        truth_dir = np.sign(a - previous)
        pred_dir = np.sign(b - previous)
    return float(np.mean(truth_dir == pred_dir))
