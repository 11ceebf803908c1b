"""The numbers behind the prediction sections, from a :class:`Predictions` record (numpy only;
the figures and the page draw these).

Decisions, probabilities and targets are the run's own (its prediction table or its best
epoch's head outputs); what is computed here is counted from them: a confusion matrix and
per-class precision / recall / F1, reliability bins before and after calibration, the
threshold curve, the most confident errors and regression residuals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlxbert_heads import fit_temperature
from mlxbert_heads import metrics as M

from .summary import CLASSIFICATION, Predictions

N_BINS = 10
N_ERRORS = 10
TEXT_CHARS = 300


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts (true class, predicted class), as scikit-learn's ``confusion_matrix``."""
    cm = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return cm


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(len(a), dtype=np.float64), where=b > 0)


def per_class(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray, labels: list[str]):
    """Precision, recall, F1 and support per class from true-positive, predicted and actual
    counts (zero where undefined, as scikit-learn's ``zero_division=0``)."""
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    f1 = _ratio(2 * tp, predicted + actual)
    return [
        {"label": name, "precision": p, "recall": r, "f1": f, "support": int(s)}
        for name, p, r, f, s in zip(labels, precision, recall, f1, actual)
    ]


def class_table(pred: Predictions) -> list[dict[str, Any]]:
    """Per-class (multilabel: per-label) precision, recall, F1 and support."""
    if pred.task == "multilabel":
        truth, chosen = pred.truth.astype(bool), pred.predicted.astype(bool)
        tp = (truth & chosen).sum(axis=0)
        return per_class(tp, chosen.sum(axis=0), truth.sum(axis=0), pred.labels)
    cm = confusion_matrix(pred.truth, pred.predicted, len(pred.labels))
    return per_class(np.diag(cm), cm.sum(axis=0), cm.sum(axis=1), pred.labels)


@dataclass
class Reliability:
    """Reliability bins of one set of probabilities: mean confidence, observed frequency and
    count per bin, and the expected calibration error (ECE)."""

    name: str
    confidence: np.ndarray
    frequency: np.ndarray
    counts: np.ndarray
    ece: float


def reliability(name: str, confidence: np.ndarray, outcome: np.ndarray) -> Reliability:
    """Equal-width bins over [0, 1] (``N_BINS``); ``outcome`` is 1 where the event happened."""
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    outcome = np.asarray(outcome, np.float64).reshape(-1)
    index = np.clip((confidence * N_BINS).astype(np.int64), 0, N_BINS - 1)
    counts = np.bincount(index, minlength=N_BINS)
    sums = np.bincount(index, weights=confidence, minlength=N_BINS)
    hits = np.bincount(index, weights=outcome, minlength=N_BINS)
    conf, freq = _ratio(sums, counts), _ratio(hits, counts)
    ece = float(np.sum(np.abs(conf - freq) * counts) / max(1, counts.sum()))
    return Reliability(name, conf, freq, counts, ece)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@dataclass
class Calibration:
    """Reliability before calibration (temperature 1) and after it: with the run's own fitted
    temperatures, or (``fitted_here``) with one temperature fitted on these predictions, which
    shows what calibration would do but is measured on the data it was fitted on."""

    kind: str  # "positive" (binary, multilabel) or "top-label" (multiclass)
    curves: list[Reliability] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)
    fitted_here: bool = False
    note: str = ""


def _reliability_of(pred: Predictions, logits: np.ndarray, name: str) -> Reliability:
    if pred.task == "binary":
        return reliability(name, _sigmoid(logits), pred.truth)
    if pred.task == "multilabel":
        return reliability(name, _sigmoid(logits), pred.truth)
    proba = _softmax(logits)
    top = proba.argmax(axis=1)
    return reliability(name, proba.max(axis=1), top == pred.truth)


def calibration(pred: Predictions) -> Calibration | None:
    """Reliability before and after calibration (None for regression)."""
    if pred.task == "regression" or pred.proba is None:
        return None
    kind = "top-label" if pred.task in ("multiclass", "ordinal") else "positive"
    if pred.logits is None:
        if pred.task == "binary":
            run = reliability("as predicted", pred.proba[:, 1], pred.truth)
        elif pred.task == "multilabel":
            run = reliability("as predicted", pred.proba, pred.truth)
        else:
            run = reliability("as predicted", pred.proba.max(axis=1), pred.predicted == pred.truth)
        note = "the run kept no head outputs, so only its predicted probabilities are shown"
        return Calibration(kind, [run], note=note)
    logits = np.asarray(pred.logits, np.float64)
    before = _reliability_of(pred, logits, "before calibration (temperature 1)")
    temperature = np.ones(len(logits)) if pred.temperature is None else pred.temperature
    if np.any(temperature != 1.0):
        scaled = logits / temperature.reshape((-1,) + (1,) * (logits.ndim - 1))
        shown = sorted({round(float(t), 4) for t in temperature})
        after = _reliability_of(pred, scaled, "after the run's temperature scaling")
        return Calibration(kind, [before, after], temperatures=shown)
    flat_logits, flat_truth = logits, pred.truth
    if pred.task == "multilabel":
        flat_logits, flat_truth = logits.reshape(-1), pred.truth.reshape(-1)
    t = fit_temperature(flat_logits, flat_truth)
    after = _reliability_of(pred, logits / t, f"temperature {t:.3g} fitted here (in-sample)")
    note = (
        "the run did not calibrate (temperature 1): the second curve is temperature scaling "
        "fitted on these same predictions, to show what calibration would change"
    )
    return Calibration(kind, [before, after], temperatures=[t], fitted_here=True, note=note)


@dataclass
class ThresholdCurve:
    """Precision, recall and F1 of the positive class at each threshold on P(positive)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    fitted: dict[str, float]


def threshold_curve(pred: Predictions) -> ThresholdCurve | None:
    """For a binary run with fitted thresholds (None otherwise)."""
    if pred.task != "binary" or not pred.thresholds or pred.proba is None:
        return None
    p = pred.proba[:, 1]
    truth = pred.truth.astype(bool)
    grid = np.unique(np.r_[np.linspace(0.0, 1.0, 201), list(pred.thresholds.values())])
    chosen = p[None, :] >= grid[:, None]
    tp = (chosen & truth[None, :]).sum(axis=1)
    predicted, actual = chosen.sum(axis=1), np.full(len(grid), truth.sum())
    return ThresholdCurve(
        grid,
        _ratio(tp, predicted),
        _ratio(tp, actual),
        _ratio(2 * tp, predicted + actual),
        dict(pred.thresholds),
    )


def _short(text: str | None) -> str:
    if text is None:
        return ""
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _label_set(labels: list[str], row: np.ndarray) -> str:
    return ", ".join(name for name, on in zip(labels, row) if on) or "(none)"


def confident_errors(pred: Predictions, count: int = N_ERRORS) -> list[dict[str, Any]]:
    """The ``count`` wrong predictions made with the most confidence (regression: the largest
    errors, on the training scale), with their text."""
    if pred.task in CLASSIFICATION:
        wrong = np.flatnonzero(pred.predicted != pred.truth)
        if pred.proba is None:
            return []
        confidence = pred.proba[wrong, pred.predicted[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")][:count]
        rows = [
            {
                "truth": pred.labels[pred.truth[i]],
                "predicted": pred.labels[pred.predicted[i]],
                "confidence": float(pred.proba[i, pred.predicted[i]]),
            }
            for i in order
        ]
    elif pred.task == "multilabel":
        assert pred.proba is not None
        off = pred.predicted != pred.truth
        sure = np.where(pred.predicted == 1, pred.proba, 1.0 - pred.proba)
        score = np.where(off, sure, -1.0).max(axis=1)
        wrong = np.flatnonzero(off.any(axis=1))
        order = wrong[np.argsort(-score[wrong], kind="stable")][:count]
        rows = [
            {
                "truth": _label_set(pred.labels, pred.truth[i]),
                "predicted": _label_set(pred.labels, pred.predicted[i]),
                "confidence": float(score[i]),
            }
            for i in order
        ]
    else:
        residual = regression_residuals(pred)
        size = np.abs(residual).max(axis=1)
        order = np.argsort(-size, kind="stable")[:count]
        rows = [
            {
                "truth": ", ".join(f"{v:.6g}" for v in pred.truth[i]),
                "predicted": ", ".join(f"{v:.6g}" for v in pred.predicted[i]),
                "error": float(residual[i][np.argmax(np.abs(residual[i]))]),
            }
            for i in order
        ]
    for row, i in zip(rows, order):
        row["row"] = int(i)
        row["id"] = None if pred.ids is None else pred.ids[i]
        row["text"] = _short(None if pred.texts is None else pred.texts[i])
    return rows


def regression_residuals(pred: Predictions) -> np.ndarray:
    """predicted - true, on the training scale (log(1 + y) when the run used it)."""
    if pred.scale == "log1p":
        return np.log1p(pred.predicted) - np.log1p(pred.truth)
    return pred.predicted - pred.truth


def regression_metrics(pred: Predictions) -> dict[str, float]:
    """RMSE, MAE, R² (RMSLE with a log1p target; Pearson and Spearman for one target)
    recomputed from the predictions with mlxbert-heads' metrics, as the run computed them."""
    truth, values = pred.truth, pred.predicted
    out = {}
    if pred.scale == "log1p":
        out["rmsle"] = M.rmse(np.log1p(truth), np.log1p(values))
    out |= {"rmse": M.rmse(truth, values), "mae": M.mae(truth, values)}
    if len(truth) > 1:
        out["r2"] = M.r2(truth, values)
    if truth.shape[1] == 1 and len(truth) > 2:
        out |= {"pearson": M.pearson(truth[:, 0], values[:, 0])}
        out |= {"spearman": M.spearman(truth[:, 0], values[:, 0])}
    return {k: float(v) for k, v in out.items()}


def decision_metrics(pred: Predictions) -> dict[str, float]:
    """Accuracy (and for binary the positive class's precision, recall, F1) counted from the
    decisions; they must equal the run's metrics files."""
    if pred.task not in CLASSIFICATION:
        return {}
    out = {"accuracy": float(np.mean(pred.predicted == pred.truth))}
    if len(pred.labels) == 2:
        positive = class_table(pred)[1]
        out |= {k: float(positive[k]) for k in ("precision", "recall", "f1")}
    return out


__all__ = [
    "Calibration",
    "Reliability",
    "ThresholdCurve",
    "calibration",
    "class_table",
    "confident_errors",
    "confusion_matrix",
    "decision_metrics",
    "per_class",
    "regression_metrics",
    "regression_residuals",
    "reliability",
    "threshold_curve",
]
