"""Evaluation metrics as plain functions on numpy arrays (lists and mlx arrays also work).

Every function returns a Python float equal to scikit-learn's / scipy's value on the same
input, with the same conventions for degenerate cases (documented per function). Inputs are
validated: empty arrays, mismatched lengths, NaN/inf values and wrong shapes raise ValueError.
Pure numpy: neither scikit-learn nor scipy is needed at runtime.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._classification import (
    accuracy,
    f1,
    hamming_loss,
    matthews_corrcoef,
    precision,
    quadratic_weighted_kappa,
    recall,
    subset_accuracy,
)
from ._correlation import kendall_tau, pearson, spearman
from ._ranking import log_loss, roc_auc, top_k_accuracy
from ._ranks import rankdata
from ._regression import directional_accuracy, mae, mape, mse, r2, rmse, rmsle

METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "roc_auc": roc_auc,
    "log_loss": log_loss,
    "top_k_accuracy": top_k_accuracy,
    "subset_accuracy": subset_accuracy,
    "hamming_loss": hamming_loss,
    "mse": mse,
    "rmse": rmse,
    "rmsle": rmsle,
    "mae": mae,
    "r2": r2,
    "mape": mape,
    "directional_accuracy": directional_accuracy,
    "pearson": pearson,
    "spearman": spearman,
    "kendall_tau": kendall_tau,
    "matthews_corrcoef": matthews_corrcoef,
    "quadratic_weighted_kappa": quadratic_weighted_kappa,
}
"""Every metric by name."""

_LOWER_IS_BETTER = ("log_loss", "hamming_loss", "mse", "rmse", "rmsle", "mae", "mape", "nll")


def greater_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (for model selection / early
    stopping). Accepts the suffixed names heads report, e.g. ``"f1_macro"``, ``"roc_auc_macro"``.
    """
    base = name.lower()
    if re.fullmatch(r"top_\d+_accuracy", base):
        return True
    if any(base == m or base.startswith(m + "_") for m in _LOWER_IS_BETTER):
        return False
    if base in METRICS or any(base.startswith(m + "_") for m in METRICS):
        return True
    raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}")


__all__ = [
    "METRICS",
    "accuracy",
    "directional_accuracy",
    "f1",
    "greater_is_better",
    "hamming_loss",
    "kendall_tau",
    "log_loss",
    "mae",
    "mape",
    "matthews_corrcoef",
    "mse",
    "pearson",
    "precision",
    "quadratic_weighted_kappa",
    "r2",
    "rankdata",
    "recall",
    "rmse",
    "rmsle",
    "roc_auc",
    "spearman",
    "subset_accuracy",
    "top_k_accuracy",
]
