"""GLUE task metrics and the GLUE average score.

The metric functions themselves come from :mod:`mlxbert_heads.metrics` (equal to
scikit-learn's / scipy's); this module only decides which ones each task uses and how the
GLUE leaderboard combines them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlxbert_heads import metrics as _m

from .tasks import TASKS, GlueTask, get_task

_METRIC_FUNCTIONS = {
    "accuracy": lambda y, p: _m.accuracy(y, p),
    "f1": lambda y, p: _m.f1(y, p, average="binary"),
    "matthews_corrcoef": lambda y, p: _m.matthews_corrcoef(y, p),
    "pearson": lambda y, p: _m.pearson(y, p),
    "spearman": lambda y, p: _m.spearman(y, p),
}


def predictions_from_logits(task: str | GlueTask, logits: np.ndarray) -> np.ndarray:
    """Class ids (argmax) for classification; the score itself for regression."""
    t = get_task(task)
    logits = np.asarray(logits)
    if t.is_regression:
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float64)
    if logits.ndim == 2 and logits.shape[1] == 1:
        # A single-logit binary head: positive when the logit is above zero.
        return (logits[:, 0] > 0).astype(np.int64)
    return logits.argmax(axis=-1).astype(np.int64)


def compute_metrics(
    task: str | GlueTask, predictions: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """The task's GLUE metrics on one labeled split.

    ``predictions`` are class ids (classification) or scores (STS-B); see
    :func:`predictions_from_logits`. Values are fractions (0..1), not percentages.
    """
    t = get_task(task)
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{t.name}: {predictions.shape[0]} predictions for {labels.shape[0]} labels"
        )
    if not t.is_regression:
        predictions = predictions.astype(np.int64)
        labels = labels.astype(np.int64)
    else:
        predictions = predictions.astype(np.float64)
        labels = labels.astype(np.float64)
    return {name: float(_METRIC_FUNCTIONS[name](labels, predictions)) for name in t.metrics}


def task_score(task: str | GlueTask, metrics: Mapping[str, float]) -> float:
    """One number per task, as the GLUE leaderboard computes it.

    Tasks with two metrics (MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman)
    count as their unweighted mean; MNLI counts as the mean of its matched and mismatched
    accuracies (``accuracy_m``/``accuracy_mm``), or its single accuracy when only one was
    evaluated.
    """
    t = get_task(task)
    if t.name == "mnli" and "accuracy_m" in metrics:
        parts = [metrics["accuracy_m"]]
        if "accuracy_mm" in metrics:
            parts.append(metrics["accuracy_mm"])
        return float(np.mean(parts))
    missing = [m for m in t.metrics if m not in metrics]
    if missing:
        raise KeyError(f"{t.name}: metrics {missing} missing from {dict(metrics)}")
    return float(np.mean([metrics[m] for m in t.metrics]))


def glue_score(results: Mapping[str, Mapping[str, float]]) -> dict[str, object]:
    """The GLUE average over the tasks in ``results`` (task name -> metrics dict).

    Returns ``{"score", "task_scores", "tasks", "missing", "complete"}``. The score is the
    unweighted mean of the per-task scores (:func:`task_score`); ``complete`` is True only
    when all nine tasks are present, as on the leaderboard. Checked against the leaderboard
    row of BERT-large (80.5 from its published per-task test numbers).
    """
    task_scores = {get_task(name).name: task_score(name, m) for name, m in results.items()}
    if not task_scores:
        raise ValueError("glue_score needs at least one task's metrics")
    missing = [name for name in TASKS if name not in task_scores]
    return {
        "score": float(np.mean(list(task_scores.values()))),
        "task_scores": task_scores,
        "tasks": list(task_scores),
        "missing": missing,
        "complete": not missing,
    }
