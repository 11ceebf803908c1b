"""Scores of predictions against targets, with mlxbert-heads' metric functions.

Predictions are the "raw" form every model folder produces (:meth:`TargetSpec.decode` turns
them into table values): binary P(positive), class or label probabilities, regression values
on the training scale. ``primary_metric`` names the score used for early stopping and model
selection; ``greater_is_better`` its direction.
"""

from __future__ import annotations

import numpy as np

from mlxbert_heads import metrics as M

from .targets import TargetSpec

PRIMARY = {
    "binary": "accuracy",
    "multiclass": "accuracy",
    "ordinal": "quadratic_weighted_kappa",
    "multilabel": "f1_micro",
    "regression": "rmse",
}


def primary_metric(spec: TargetSpec) -> str:
    if spec.task == "regression" and spec.transform == "log1p":
        return "rmsle"
    return PRIMARY[spec.task]


def greater_is_better(name: str) -> bool:
    return M.greater_is_better(name)


def score(spec: TargetSpec, y: np.ndarray, raw: np.ndarray, threshold: float = 0.5):
    """Metric dict for encoded targets ``y`` (see :meth:`TargetSpec.encode`) and raw
    predictions ``raw``."""
    raw = np.asarray(raw, dtype=np.float64)
    if spec.task == "binary":
        truth = np.asarray(y).reshape(-1).astype(np.int64)
        proba = np.clip(raw.reshape(-1), 1e-7, 1 - 1e-7)
        pred = (proba >= threshold).astype(np.int64)
        out = {
            "accuracy": M.accuracy(truth, pred),
            "f1": M.f1(truth, pred),
            "precision": M.precision(truth, pred),
            "recall": M.recall(truth, pred),
            "log_loss": M.log_loss(truth, proba, labels=[0, 1]),
        }
        if np.unique(truth).size == 2:
            out["roc_auc"] = M.roc_auc(truth, proba)
        return out
    if spec.task in ("multiclass", "ordinal"):
        truth = np.asarray(y).reshape(-1).astype(np.int64)
        proba = raw.reshape(len(truth), -1)
        pred = np.argmax(proba, axis=1)
        out = {
            "accuracy": M.accuracy(truth, pred),
            "f1_macro": M.f1(truth, pred, average="macro"),
            "log_loss": M.log_loss(
                truth, np.clip(proba, 1e-7, 1.0), labels=list(range(proba.shape[1]))
            ),
        }
        if spec.task == "ordinal":
            labels = list(range(proba.shape[1]))
            out["quadratic_weighted_kappa"] = M.quadratic_weighted_kappa(truth, pred, labels=labels)
            out["mae"] = M.mae(truth.astype(float), pred.astype(float))
        return out
    if spec.task == "multilabel":
        truth = np.asarray(y).reshape(raw.shape[0], -1).astype(np.int64)
        pred = (raw.reshape(truth.shape) >= threshold).astype(np.int64)
        return {
            "f1_micro": M.f1(truth, pred, average="micro"),
            "f1_macro": M.f1(truth, pred, average="macro"),
            "subset_accuracy": M.subset_accuracy(truth, pred),
            "hamming_loss": M.hamming_loss(truth, pred),
        }
    # regression: y and raw on the training (possibly log1p) scale
    truth = np.asarray(y, dtype=np.float64).reshape(raw.shape[0], -1)
    values = raw.reshape(truth.shape)
    out = {}
    if spec.transform == "log1p":
        # RMSLE = RMSE of log1p values, which is what training already sees.
        out["rmsle"] = M.rmse(truth, values)
        truth, values = np.expm1(truth), np.expm1(values)
    out |= {"rmse": M.rmse(truth, values), "mae": M.mae(truth, values)}
    if truth.shape[0] > 1:
        out["r2"] = M.r2(truth, values)
    return out


__all__ = ["PRIMARY", "greater_is_better", "primary_metric", "score"]
