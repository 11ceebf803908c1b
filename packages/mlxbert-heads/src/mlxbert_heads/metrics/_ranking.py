"""Score-based metrics: ROC AUC, log loss, top-k accuracy (scikit-learn's definitions)."""

from __future__ import annotations

import warnings

import numpy as np

from ._ranks import rankdata
from ._validation import check_average, check_labels, check_pair, squeeze_column


def _binary_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """Exact AUC = P(score_pos > score_neg) + ½·P(tie), via the Mann-Whitney rank sum."""
    n_pos = int(is_positive.sum())
    n_neg = is_positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            "Only one class present in y_true. ROC AUC score is not defined in that case."
        )
    ranks = rankdata(score)
    return float((ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _average_columns(truth: np.ndarray, scores: np.ndarray, average: str) -> float:
    """One-vs-rest AUC per column, averaged (macro/weighted) or pooled (micro)."""
    if average == "micro":
        return _binary_auc(truth.ravel().astype(bool), scores.ravel())
    values = np.array(
        [_binary_auc(truth[:, j].astype(bool), scores[:, j]) for j in range(truth.shape[1])]
    )
    if average == "weighted":
        support = truth.sum(axis=0)
        if support.sum() == 0:
            return 0.0
        return float(np.average(values, weights=support))
    return float(values.mean())


def roc_auc(y_true, y_score, *, average="macro", labels=None) -> float:
    """Area under the ROC curve, exact with ties (a tie counts ½).

    - binary: ``y_true`` with two classes and ``y_score`` the score of the greater class
      (shape (n,), or (n, 2) probabilities whose column 1 is used);
    - multiclass: ``y_score`` (n, n_classes) probabilities (rows sum to 1), one-vs-rest,
      ``average`` "macro" or "weighted" (by prevalence); columns follow the sorted classes
      of ``labels`` (default: those in ``y_true``);
    - multilabel: ``y_true`` a 0/1 indicator matrix, ``average`` "macro", "weighted" or
      "micro".

    Raises ValueError when a class (or label column) has only one value in ``y_true``, like
    scikit-learn.
    """
    truth, score = check_pair(y_true, y_score, pred_name="y_score")
    truth = squeeze_column(truth)
    check_labels("y_true", truth)
    if truth.ndim == 2:
        check_average(average, ("macro", "weighted", "micro"))
        if score.shape != truth.shape:
            raise ValueError(
                f"y_score must have shape {truth.shape} like y_true, got {score.shape}"
            )
        if not np.all(np.isin(truth, (0, 1))):
            raise ValueError("a 2-D y_true must be a 0/1 multilabel indicator matrix")
        return _average_columns(truth, score.astype(np.float64), average)
    classes = np.unique(truth) if labels is None else np.unique(np.asarray(list(labels)))
    if labels is not None and not np.all(np.isin(truth, classes)):
        raise ValueError("y_true contains labels that are not in `labels`")
    if score.ndim == 2 and score.shape[1] == 2 and classes.size <= 2:
        score = score[:, 1]
    if score.ndim == 1:
        if classes.size > 2:
            raise ValueError(
                f"y_true has {classes.size} classes: pass y_score as (n_samples, n_classes) "
                "probabilities"
            )
        if classes.size < 2:
            raise ValueError(
                "Only one class present in y_true. ROC AUC score is not defined in that case."
            )
        return _binary_auc(truth == classes[1], score.astype(np.float64))
    check_average(average, ("macro", "weighted"))
    if score.ndim != 2 or score.shape[1] != classes.size:
        raise ValueError(
            f"y_score has shape {score.shape} but there are {classes.size} classes "
            f"({classes.tolist()}); pass one probability column per class or set `labels`"
        )
    if not np.allclose(score.sum(axis=1), 1.0):
        raise ValueError(
            "multiclass y_score must be probabilities summing to 1 over classes "
            "(apply a softmax to logits first)"
        )
    one_hot = (truth[:, None] == classes[None, :]).astype(np.int64)
    return _average_columns(one_hot, score.astype(np.float64), average)


def log_loss(y_true, y_proba, *, labels=None) -> float:
    """Mean negative log-likelihood of the true class (natural log).

    ``y_proba`` is (n,) P(greater class) for binary targets, or (n, n_classes) probabilities
    whose columns follow the sorted classes (``labels`` when given; needed when ``y_true``
    lacks a class). Probabilities are clipped to [eps, 1 - eps] with eps the dtype's machine
    epsilon, as scikit-learn does.
    """
    truth, proba = check_pair(y_true, y_proba, pred_name="y_proba")
    truth = squeeze_column(truth)
    check_labels("y_true", truth)
    if truth.ndim != 1:
        raise ValueError("log_loss needs 1-D class labels in y_true")
    if proba.max() > 1 or proba.min() < 0:
        raise ValueError("y_proba must contain probabilities in [0, 1]")
    if proba.dtype not in (np.float16, np.float32, np.float64):
        proba = proba.astype(np.float64)
    classes = np.unique(truth) if labels is None else np.unique(np.asarray(list(labels)))
    if labels is not None and not np.all(np.isin(truth, classes)):
        raise ValueError("y_true contains labels that are not in `labels`")
    if classes.size < 2:
        raise ValueError(
            f"y_true contains only one label ({classes[0]!r}); pass every class via `labels`"
        )
    if proba.ndim == 1:
        proba = proba[:, None]
    if proba.shape[1] == 1:
        proba = np.concatenate([1 - proba, proba], axis=1)
    if proba.shape[1] != classes.size:
        raise ValueError(
            f"y_proba has {proba.shape[1]} columns but there are {classes.size} classes "
            f"({classes.tolist()}); pass every class via `labels`"
        )
    eps = np.finfo(proba.dtype).eps
    if not np.allclose(proba.sum(axis=1), 1.0, rtol=np.sqrt(eps), atol=0):
        warnings.warn(
            "y_proba rows do not sum to one; make sure to pass probabilities", stacklevel=2
        )
    proba = np.clip(proba, eps, 1 - eps)
    index = np.searchsorted(classes, truth)
    picked = proba[np.arange(truth.size), index].astype(np.float64)
    return float(-np.mean(np.log(picked)))


def top_k_accuracy(y_true, y_score, *, k=2, labels=None) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    Ties are broken like scikit-learn (among equal scores the later class ranks first).
    For binary 1-D scores, k=1 thresholds at 0.5 (probabilities) or 0 (logits).
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    truth, score = check_pair(y_true, y_score, pred_name="y_score")
    truth = squeeze_column(truth)
    check_labels("y_true", truth)
    if truth.ndim != 1:
        raise ValueError("top_k_accuracy needs 1-D class labels in y_true")
    classes = np.unique(truth) if labels is None else np.asarray(list(labels))
    if labels is not None:
        if np.unique(classes).size != classes.size or not np.array_equal(
            np.unique(classes), classes
        ):
            raise ValueError("`labels` must be unique and sorted")
        if not np.all(np.isin(truth, classes)):
            raise ValueError("y_true contains labels that are not in `labels`")
    n_score_classes = score.shape[1] if score.ndim == 2 else 2
    if classes.size != n_score_classes:
        raise ValueError(
            f"y_true has {classes.size} classes but y_score has {n_score_classes} columns; "
            "pass every class via `labels`"
        )
    encoded = np.searchsorted(classes, truth)
    if score.ndim == 1:
        if k >= 2:
            return 1.0
        threshold = 0.5 if (score.min() >= 0 and score.max() <= 1) else 0.0
        return float(np.mean((score > threshold) == encoded))
    if k >= classes.size:
        return 1.0
    ranked = np.argsort(score, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return float(np.mean(np.any(ranked == encoded[:, None], axis=1)))
