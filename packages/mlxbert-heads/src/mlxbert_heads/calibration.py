"""Post-hoc calibration and decision thresholds, fitted on a validation set (numpy, float64).

- :func:`fit_temperature` — temperature scaling (Guo et al. 2017): one scalar T minimising the
  validation negative log-likelihood of ``logits / T``. The NLL is convex in 1/T, so a
  safeguarded Newton iteration finds the optimum in a handful of steps.
- :func:`choose_threshold` — the probability cut-off maximising F1, Youden's J or accuracy,
  searched exactly over every distinct validation score.
"""

from __future__ import annotations

import numpy as np

from .metrics._validation import check_pair

THRESHOLD_CRITERIA = ("f1", "youden", "accuracy")
_MIN_TEMPERATURE, _MAX_TEMPERATURE = 1e-2, 1e2


def _binary_nll_derivatives(beta: float, logits: np.ndarray, targets: np.ndarray):
    z = beta * logits
    value = np.mean(np.logaddexp(0.0, z) - targets * z)
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
    grad = np.mean((p - targets) * logits)
    hess = np.mean(p * (1 - p) * logits**2)
    return value, grad, hess


def _multiclass_nll_derivatives(beta: float, logits: np.ndarray, targets: np.ndarray):
    z = beta * logits
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    p = np.exp(z - log_norm[:, None])
    true_logit = logits[np.arange(targets.size), targets]
    value = np.mean(log_norm - z[np.arange(targets.size), targets])
    mean_logit = (p * logits).sum(axis=1)
    grad = np.mean(mean_logit - true_logit)
    hess = np.mean((p * logits**2).sum(axis=1) - mean_logit**2)
    return value, grad, hess


def temperature_nll(logits, targets, temperature: float) -> float:
    """Validation NLL of ``logits / temperature`` (binary logits (n,) or (n, classes))."""
    logits, targets, derivatives = _prepare(logits, targets)
    return float(derivatives(1.0 / temperature, logits, targets)[0])


def _prepare(logits, targets):
    logits, targets = check_pair(logits, targets, true_name="logits", pred_name="targets")
    logits = logits.astype(np.float64)
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.ndim == 1:
        if not np.all(np.isin(targets, (0, 1))):
            raise ValueError("binary temperature scaling needs 0/1 targets")
        return logits, targets.astype(np.float64).reshape(-1), _binary_nll_derivatives
    if logits.ndim != 2 or targets.ndim != 1:
        raise ValueError(
            f"expected logits (n,) or (n, classes) and class indices (n,), got {logits.shape} "
            f"and {targets.shape}"
        )
    targets = targets.astype(np.int64)
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(f"class indices must lie in [0, {logits.shape[1] - 1}]")
    return logits, targets, _multiclass_nll_derivatives


def fit_temperature(logits, targets, *, max_iter: int = 100, tol: float = 1e-10) -> float:
    """Temperature T > 0 minimising the NLL of ``logits / T`` on validation data.

    ``logits``: (n,) binary logits with 0/1 ``targets``, or (n, classes) with class indices.
    T > 1 softens over-confident models, T < 1 sharpens under-confident ones; the result is
    kept within [0.01, 100] (separable data would otherwise push it to 0).
    """
    logits, targets, derivatives = _prepare(logits, targets)
    beta_min, beta_max = 1.0 / _MAX_TEMPERATURE, 1.0 / _MIN_TEMPERATURE
    beta = 1.0
    value, grad, hess = derivatives(beta, logits, targets)
    for _ in range(max_iter):
        if abs(grad) < tol:
            break
        # Newton step on beta = 1/T (convex objective), falling back to a gradient step
        # when the curvature vanishes; halve the step until the NLL decreases.
        step = grad / hess if hess > 1e-12 else np.sign(grad) * 0.5 * beta
        improved = False
        for _ in range(50):
            candidate = float(np.clip(beta - step, beta_min, beta_max))
            cand_value, cand_grad, cand_hess = derivatives(candidate, logits, targets)
            if cand_value <= value:
                improved = True
                break
            step *= 0.5
        if not improved or abs(candidate - beta) < 1e-12:
            break
        beta, value, grad, hess = candidate, cand_value, cand_grad, cand_hess
    return float(1.0 / beta)


def choose_threshold(probabilities, targets, *, criterion: str = "f1") -> float:
    """Decision threshold t (predict positive when ``p >= t``) maximising ``criterion`` on
    validation data: "f1", "youden" (TPR - FPR) or "accuracy".

    Every distinct score is tried; the returned t sits halfway between the chosen score and
    the next lower one, so validation predictions are unchanged while unseen scores get a
    margin. Ties between thresholds go to the highest one. Needs both classes in ``targets``.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(
            f"unknown criterion={criterion!r}; choose one of {', '.join(THRESHOLD_CRITERIA)}"
        )
    scores, truth = check_pair(
        probabilities, targets, true_name="probabilities", pred_name="targets"
    )
    scores, truth = scores.reshape(-1).astype(np.float64), truth.reshape(-1)
    if scores.size != truth.size:
        raise ValueError("probabilities and targets must both be 1-D of the same length")
    if not np.all(np.isin(truth, (0, 1))):
        raise ValueError("choose_threshold needs 0/1 targets")
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("choose_threshold needs both classes in the validation targets")

    order = np.argsort(-scores, kind="mergesort")
    ordered, hits = scores[order], truth[order].astype(np.int64)
    last_of_value = np.r_[np.nonzero(ordered[1:] != ordered[:-1])[0], ordered.size - 1]
    tp = np.cumsum(hits)[last_of_value].astype(np.float64)
    fp = (last_of_value + 1) - tp
    if criterion == "f1":
        value = 2 * tp / (tp + fp + positives)
    elif criterion == "youden":
        value = tp / positives - fp / negatives
    else:
        value = (tp + negatives - fp) / truth.size
    best = int(np.argmax(value))
    if criterion == "accuracy" and negatives / truth.size > value[best]:
        return float(np.nextafter(ordered[0], np.inf))  # predicting all-negative is best
    cut = last_of_value[best]
    if cut + 1 < ordered.size:
        middle = 0.5 * (ordered[cut] + ordered[cut + 1])
        # Adjacent floats can round the midpoint down onto the lower score: keep it above.
        return float(middle if middle > ordered[cut + 1] else ordered[cut])
    return float(ordered[cut])


#: Positive validation examples a label needs for a threshold of its own (fewer: the global
#: one); a threshold fitted on one or two positives mostly memorises them.
MIN_POSITIVES = 5


def choose_thresholds(
    probabilities,
    targets,
    *,
    criterion: str = "f1",
    min_positives: int = MIN_POSITIVES,
    default=0.5,
) -> list[float]:
    """Per-column thresholds for (n, k) multilabel probabilities and 0/1 targets.

    Columns with at least ``min_positives`` positives (and some negatives) get their own
    :func:`choose_threshold`; the others one global threshold chosen on every column pooled
    (the micro-averaged criterion), or ``default`` (a number, or one per column) when no
    column is rich enough to pool or ``min_positives`` is 0.
    """
    proba = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(targets)
    if proba.ndim != 2 or truth.shape != proba.shape:
        raise ValueError(
            f"probabilities and targets must both be (n, k), got {proba.shape} and {truth.shape}"
        )
    k = proba.shape[1]
    fallback = [float(x) for x in np.broadcast_to(np.asarray(default, np.float64), (k,))]
    positives, negatives = truth.sum(axis=0), (1 - truth).sum(axis=0)
    own = (positives >= max(min_positives, 1)) & (negatives > 0)
    if min_positives > 0 and truth.any() and (1 - truth).any():
        pooled = choose_threshold(proba.reshape(-1), truth.reshape(-1), criterion=criterion)
        fallback = [pooled] * k
    return [
        choose_threshold(proba[:, j], truth[:, j], criterion=criterion) if own[j] else fallback[j]
        for j in range(k)
    ]


__all__ = [
    "MIN_POSITIVES",
    "THRESHOLD_CRITERIA",
    "choose_threshold",
    "choose_thresholds",
    "fit_temperature",
    "temperature_nll",
]
