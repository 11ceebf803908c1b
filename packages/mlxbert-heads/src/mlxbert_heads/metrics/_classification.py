"""Label-based classification metrics (same values and edge cases as scikit-learn)."""

from __future__ import annotations

import numpy as np

from ._validation import check_average, classification_pair


def _label_counts(y_true, y_pred, kind, average, pos_label):
    """Per-label true positives, predicted counts and true counts (supports)."""
    if kind == "multilabel":
        if average == "binary":
            raise ValueError(
                "multilabel targets need average='micro', 'macro' or 'weighted', not 'binary'"
            )
        tp = np.sum(y_true & y_pred, axis=0)
        return tp, y_pred.sum(axis=0), y_true.sum(axis=0)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    if average == "binary":
        if kind == "multiclass":
            raise ValueError(
                f"targets have {labels.size} classes but average='binary'; "
                "use average='macro', 'micro' or 'weighted'"
            )
        if labels.size == 2 and pos_label not in labels:
            raise ValueError(
                f"pos_label={pos_label!r} is not a valid label: it should be one of "
                f"{labels.tolist()}"
            )
        labels = np.asarray([pos_label])
    true_hit = y_true[:, None] == labels[None, :]
    pred_hit = y_pred[:, None] == labels[None, :]
    tp = np.sum(true_hit & pred_hit, axis=0)
    return tp, pred_hit.sum(axis=0), true_hit.sum(axis=0)


def _divide(numerator, denominator, zero_division):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(numerator.shape, float(zero_division))
    ok = denominator != 0
    out[ok] = numerator[ok] / denominator[ok]
    return out


def _prf(y_true, y_pred, which, average, pos_label, zero_division):
    check_average(average)
    y_true, y_pred, kind = classification_pair(y_true, y_pred)
    tp, pred_sum, true_sum = _label_counts(y_true, y_pred, kind, average, pos_label)
    if average == "micro":
        tp, pred_sum, true_sum = (
            tp.sum(keepdims=True),
            pred_sum.sum(keepdims=True),
            true_sum.sum(keepdims=True),
        )
    if which == "precision":
        scores = _divide(tp, pred_sum, zero_division)
    elif which == "recall":
        scores = _divide(tp, true_sum, zero_division)
    else:
        scores = _divide(2 * tp, pred_sum + true_sum, zero_division)
    # Average like scikit-learn: labels scored nan (zero_division=nan) are left out, and
    # "weighted" with no true sample at all falls back to the plain mean.
    keep = ~np.isnan(scores)
    if not np.any(keep):
        return float("nan")
    scores = scores[keep]
    weights = true_sum[keep] if average == "weighted" else None
    if weights is None or weights.sum() == 0:
        return float(scores.mean())
    return float(np.average(scores, weights=weights))


def precision(y_true, y_pred, *, average="binary", pos_label=1, zero_division=0.0) -> float:
    """Fraction of predicted positives that are right; ``zero_division`` when nothing is predicted.

    ``average``: "binary" (the ``pos_label`` class), "macro" (unweighted mean over labels),
    "micro" (global counts) or "weighted" (mean weighted by true support).
    """
    return _prf(y_true, y_pred, "precision", average, pos_label, zero_division)


def recall(y_true, y_pred, *, average="binary", pos_label=1, zero_division=0.0) -> float:
    """Fraction of true positives that are found; ``zero_division`` when there are none."""
    return _prf(y_true, y_pred, "recall", average, pos_label, zero_division)


def f1(y_true, y_pred, *, average="binary", pos_label=1, zero_division=0.0) -> float:
    """Harmonic mean of precision and recall, 2·TP / (2·TP + FP + FN) per label."""
    return _prf(y_true, y_pred, "f1", average, pos_label, zero_division)


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches (for indicator matrices: whole rows, like subset accuracy)."""
    y_true, y_pred, kind = classification_pair(y_true, y_pred)
    if kind == "multilabel":
        return float(np.mean(np.all(y_true == y_pred, axis=1)))
    return float(np.mean(y_true == y_pred))


def subset_accuracy(y_true, y_pred) -> float:
    """Multilabel exact-match ratio: a row counts only if every label is right."""
    return accuracy(y_true, y_pred)


def hamming_loss(y_true, y_pred) -> float:
    """Fraction of wrong labels over all (sample, label) cells."""
    y_true, y_pred, _ = classification_pair(y_true, y_pred)
    return float(np.mean(y_true != y_pred))


def _confusion(y_true, y_pred, labels):
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    keep = np.isin(y_true, labels) & np.isin(y_pred, labels)
    rows = order[np.searchsorted(sorted_labels, y_true[keep])].astype(np.int64)
    cols = order[np.searchsorted(sorted_labels, y_pred[keep])].astype(np.int64)
    k = labels.size
    return np.bincount(rows * k + cols, minlength=k * k).reshape(k, k).astype(np.float64)


def matthews_corrcoef(y_true, y_pred) -> float:
    """Matthews correlation (multiclass R_K statistic); 0.0 when it is undefined
    (e.g. constant predictions), as scikit-learn returns."""
    y_true, y_pred, kind = classification_pair(y_true, y_pred)
    if kind == "multilabel":
        raise ValueError("matthews_corrcoef needs 1-D labels, not a multilabel indicator matrix")
    labels = np.unique(np.concatenate([y_true, y_pred]))
    cm = _confusion(y_true, y_pred, labels)
    t_sum, p_sum = cm.sum(axis=1), cm.sum(axis=0)
    n_correct, n = np.trace(cm), cm.sum()
    cov_tp = n_correct * n - np.dot(t_sum, p_sum)
    cov_pp = n**2 - np.dot(p_sum, p_sum)
    cov_tt = n**2 - np.dot(t_sum, t_sum)
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_tt * cov_pp))


def quadratic_weighted_kappa(y_true, y_pred, *, labels=None) -> float:
    """Cohen's kappa with quadratic weights (scikit-learn's ``cohen_kappa_score(...,
    weights="quadratic")``).

    Weights use the *position* of each label in ``labels`` (default: the sorted labels present
    in either input). Pass ``labels=range(num_classes)`` for the usual Kaggle definition over a
    fixed rating scale. Returns nan when kappa is undefined (a single shared label).
    """
    y_true, y_pred, kind = classification_pair(y_true, y_pred)
    if kind == "multilabel":
        raise ValueError("quadratic_weighted_kappa needs 1-D ordinal labels")
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    else:
        labels = np.asarray(list(labels))
        if labels.size == 0 or np.unique(labels).size != labels.size:
            raise ValueError("labels must be a non-empty list of distinct class labels")
        if not np.any(np.isin(y_true, labels)):
            raise ValueError("at least one label in `labels` must be present in y_true")
    cm = _confusion(y_true, y_pred, labels)
    total = cm.sum()
    if total == 0:
        return float("nan")
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / total
    idx = np.arange(labels.size, dtype=np.float64)
    weights = (idx[:, None] - idx[None, :]) ** 2
    denominator = np.sum(weights * expected)
    if denominator == 0:
        return float("nan")
    return float(1.0 - np.sum(weights * cm) / denominator)
