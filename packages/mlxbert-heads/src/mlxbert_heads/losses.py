"""Loss functions on mlx arrays, numerically stable (computed from logits, never from
probabilities), each with ``reduction`` = "mean" | "sum" | "none".

Weighted means follow PyTorch: with per-class weights the "mean" divides by the total weight
of the samples' classes, so class weights change the balance but not the scale.
"""

from __future__ import annotations

import mlx.core as mx

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction={reduction!r}; choose one of {', '.join(REDUCTIONS)}")


def _reduce(loss: mx.array, reduction: str, weights: mx.array | None = None) -> mx.array:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weights is None:
        return loss.mean()
    return loss.sum() / mx.maximum(weights.sum(), mx.array(1e-12, dtype=loss.dtype))


def _softplus(x: mx.array) -> mx.array:
    return mx.logaddexp(x, mx.zeros_like(x))


def _check_same_shape(logits: mx.array, targets: mx.array, name: str) -> None:
    if logits.shape != targets.shape:
        raise ValueError(
            f"{name}: targets have shape {tuple(targets.shape)} but logits have shape "
            f"{tuple(logits.shape)}; they must match"
        )


def binary_cross_entropy(
    logits: mx.array,
    targets: mx.array,
    *,
    pos_weight: float | mx.array | None = None,
    class_weights: tuple[float, float] | None = None,
    reduction: str = "mean",
) -> mx.array:
    """Sigmoid + binary cross-entropy from logits; targets in [0, 1] (soft labels allowed).

    ``pos_weight`` multiplies the positive term (PyTorch's ``BCEWithLogitsLoss(pos_weight)``,
    broadcast per label for multilabel logits). ``class_weights=(w_negative, w_positive)``
    weights whole samples and the "mean" becomes a weighted mean.
    """
    check_reduction(reduction)
    targets = targets.astype(logits.dtype)
    _check_same_shape(logits, targets, "binary_cross_entropy")
    positive_term = targets * _softplus(-logits)
    if pos_weight is not None:
        positive_term = positive_term * mx.array(pos_weight, dtype=logits.dtype)
    loss = positive_term + (1 - targets) * _softplus(logits)
    if class_weights is None:
        return _reduce(loss, reduction)
    w_neg, w_pos = class_weights
    weights = w_neg * (1 - targets) + w_pos * targets
    return _reduce(loss * weights, reduction, weights)


def binary_focal_loss(
    logits: mx.array,
    targets: mx.array,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    reduction: str = "mean",
) -> mx.array:
    """Focal loss (Lin et al. 2017): BCE scaled by (1 - p_t)^gamma, optionally by
    alpha_t = alpha for positives and 1 - alpha for negatives. gamma=0 and alpha=None is
    exactly binary cross-entropy."""
    check_reduction(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    targets = targets.astype(logits.dtype)
    _check_same_shape(logits, targets, "binary_focal_loss")
    loss = targets * _softplus(-logits) + (1 - targets) * _softplus(logits)
    if gamma != 0:
        # 1 - p_t from sigmoids of ±logits: exact near p_t = 1 where 1 - sigmoid would cancel.
        one_minus_pt = targets * mx.sigmoid(-logits) + (1 - targets) * mx.sigmoid(logits)
        loss = loss * mx.power(one_minus_pt, gamma)
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return _reduce(loss, reduction)


def _class_index_targets(logits: mx.array, targets: mx.array, name: str) -> mx.array:
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"{name}: expected class indices of shape ({logits.shape[0]},) for logits of shape "
            f"{tuple(logits.shape)}, got targets of shape {tuple(targets.shape)}"
        )
    return targets.astype(mx.int32)


def cross_entropy(
    logits: mx.array,
    targets: mx.array,
    *,
    class_weights: mx.array | list[float] | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> mx.array:
    """Softmax cross-entropy, PyTorch's ``CrossEntropyLoss(weight, label_smoothing)``.

    ``targets``: class indices (batch,) or class probabilities (batch, classes). With label
    smoothing eps, the target mixes the true class (1 - eps) with a uniform eps / classes.
    """
    check_reduction(reduction)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits (batch, classes), got {logits.shape}")
    num_classes = logits.shape[1]
    log_probs = logits - mx.logsumexp(logits, axis=1, keepdims=True)
    weights = None if class_weights is None else mx.array(class_weights, dtype=logits.dtype)
    if weights is not None and weights.shape != (num_classes,):
        raise ValueError(f"class_weights must have {num_classes} entries, got {weights.shape}")
    if targets.ndim == 2:  # soft targets
        _check_same_shape(logits, targets, "cross_entropy")
        soft = targets.astype(logits.dtype) * (1 - label_smoothing) + label_smoothing / num_classes
        if weights is not None:
            soft = soft * weights
        return _reduce(-(soft * log_probs).sum(axis=1), reduction)
    index = _class_index_targets(logits, targets, "cross_entropy")
    nll = -mx.take_along_axis(log_probs, index[:, None], axis=1)[:, 0]
    sample_weights = None if weights is None else weights[index]
    if sample_weights is not None:
        nll = nll * sample_weights
    loss = (1 - label_smoothing) * nll
    if label_smoothing > 0:
        weighted = log_probs if weights is None else log_probs * weights
        loss = loss - label_smoothing / num_classes * weighted.sum(axis=1)
    return _reduce(loss, reduction, sample_weights)


def multiclass_focal_loss(
    logits: mx.array,
    targets: mx.array,
    *,
    gamma: float = 2.0,
    class_weights: mx.array | list[float] | None = None,
    reduction: str = "mean",
) -> mx.array:
    """Softmax focal loss: -alpha_y (1 - p_y)^gamma log p_y, with class weights as alpha.
    gamma=0 equals :func:`cross_entropy` with the same class weights."""
    check_reduction(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if logits.ndim != 2:
        raise ValueError(
            f"multiclass_focal_loss expects logits (batch, classes), got {logits.shape}"
        )
    index = _class_index_targets(logits, targets, "multiclass_focal_loss")
    log_probs = logits - mx.logsumexp(logits, axis=1, keepdims=True)
    log_pt = mx.take_along_axis(log_probs, index[:, None], axis=1)[:, 0]
    loss = -log_pt
    if gamma != 0:
        loss = loss * mx.power(1 - mx.exp(log_pt), gamma)
    sample_weights = None
    if class_weights is not None:
        weights = mx.array(class_weights, dtype=logits.dtype)
        if weights.shape != (logits.shape[1],):
            raise ValueError(f"class_weights must have {logits.shape[1]} entries")
        sample_weights = weights[index]
        loss = loss * sample_weights
    return _reduce(loss, reduction, sample_weights)


def mse_loss(predictions: mx.array, targets: mx.array, *, reduction: str = "mean") -> mx.array:
    """Mean squared error."""
    check_reduction(reduction)
    _check_same_shape(predictions, targets, "mse_loss")
    return _reduce(mx.square(predictions - targets), reduction)


def mae_loss(predictions: mx.array, targets: mx.array, *, reduction: str = "mean") -> mx.array:
    """Mean absolute error (L1)."""
    check_reduction(reduction)
    _check_same_shape(predictions, targets, "mae_loss")
    return _reduce(mx.abs(predictions - targets), reduction)


def huber_loss(
    predictions: mx.array, targets: mx.array, *, delta: float = 1.0, reduction: str = "mean"
) -> mx.array:
    """Huber loss (PyTorch's ``HuberLoss``): quadratic within ``delta``, linear beyond."""
    check_reduction(reduction)
    if delta <= 0:
        raise ValueError(f"huber delta must be > 0, got {delta}")
    _check_same_shape(predictions, targets, "huber_loss")
    error = mx.abs(predictions - targets)
    quadratic = mx.minimum(error, delta)
    loss = 0.5 * mx.square(quadratic) + delta * (error - quadratic)
    return _reduce(loss, reduction)


def gaussian_nll_loss(
    mean: mx.array, log_variance: mx.array, targets: mx.array, *, reduction: str = "mean"
) -> mx.array:
    """Gaussian negative log-likelihood, ½·(log σ² + (y - μ)² / σ²), constant term dropped.
    Predicting the log-variance keeps σ² positive without clamping."""
    check_reduction(reduction)
    _check_same_shape(mean, targets, "gaussian_nll_loss")
    _check_same_shape(mean, log_variance, "gaussian_nll_loss")
    loss = 0.5 * (log_variance + mx.square(targets - mean) * mx.exp(-log_variance))
    return _reduce(loss, reduction)


__all__ = [
    "REDUCTIONS",
    "binary_cross_entropy",
    "binary_focal_loss",
    "cross_entropy",
    "gaussian_nll_loss",
    "huber_loss",
    "mae_loss",
    "mse_loss",
    "multiclass_focal_loss",
]
