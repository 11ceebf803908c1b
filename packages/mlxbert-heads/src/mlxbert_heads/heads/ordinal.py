"""Ordinal regression with a cumulative-link (proportional odds) model.

One shared score s = w·h and ordered cut-points θ_1 < … < θ_{K-1}:

    P(y <= k) = sigmoid(θ_k - s),   P(y = k) = P(y <= k) - P(y <= k-1)

The cut-points are θ_1 = first, θ_k = θ_{k-1} + softplus(δ_k), ordered by construction for
any parameter values, so the class probabilities are non-negative and sum to one. The loss
(negative log-likelihood) and every prediction use the same probabilities.
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import metrics as M
from ..losses import _reduce, check_reduction
from ..registry import register_head
from ._base import TaskHead, count_argument, labels_to_numpy, to_numpy

ORDINAL_PREDICTIONS = ("argmax", "expected", "median")


def cumulative_probabilities(cumulative_logits: mx.array) -> mx.array:
    """Class probabilities (batch, K) from cumulative logits θ_k - s of shape (batch, K-1)."""
    cdf = mx.sigmoid(cumulative_logits)
    batch = cdf.shape[0]
    zeros = mx.zeros((batch, 1), dtype=cdf.dtype)
    ones = mx.ones((batch, 1), dtype=cdf.dtype)
    padded = mx.concatenate([zeros, cdf, ones], axis=1)
    # The cut-points are ordered, so the differences are >= 0 up to rounding; the clamp
    # only removes negative zeros from rounding.
    return mx.maximum(padded[:, 1:] - padded[:, :-1], 0.0)


def cumulative_probabilities_np(cumulative_logits: np.ndarray) -> np.ndarray:
    cdf = 0.5 * (1.0 + np.tanh(0.5 * cumulative_logits))
    batch = cdf.shape[0]
    padded = np.concatenate([np.zeros((batch, 1)), cdf, np.ones((batch, 1))], axis=1)
    return np.maximum(np.diff(padded, axis=1), 0.0)


@register_head("ordinal")
class OrdinalRegressionHead(TaskHead):
    """Features -> (batch, num_classes - 1) cumulative logits θ_k - s.

    Args:
        hidden_size: width of the input features.
        num_classes: number of ordered classes K >= 2 (targets 0..K-1).
        class_weights: optional per-class weights of the NLL.
        prediction: how ``predict`` picks a class: "argmax" (most probable), "expected"
            (rounded expected value) or "median" (first class with P(y <= k) >= 0.5).
        hidden_dims, dropout, activation, body_bias, body_norm: optional MLP body.
    """

    outputs_argument = "num_classes"
    output_kind = "label"
    config_arguments = ("num_classes", "class_weights", "prediction")

    def __init__(
        self,
        hidden_size: int,
        *,
        num_classes: int,
        class_weights: list[float] | None = None,
        prediction: str = "argmax",
        **body: Any,
    ):
        num_classes = count_argument(num_classes, "num_classes", minimum=2)
        super().__init__(hidden_size, 1, **body)
        if prediction not in ORDINAL_PREDICTIONS:
            raise ValueError(
                f"unknown prediction {prediction!r}; choose one of {', '.join(ORDINAL_PREDICTIONS)}"
            )
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(f"class_weights needs {num_classes} entries")
        self.num_classes = num_classes
        self.prediction = prediction
        self._class_weights = None if class_weights is None else [float(w) for w in class_weights]
        # The score has no bias: the cut-points already carry the offset.
        self.output = nn.Linear(self.output.weight.shape[1], 1, bias=False)
        # Start with unit-spaced cut-points centred on 0.
        self.threshold_first = mx.array([-(self.num_classes - 2) / 2.0])
        self.threshold_deltas = mx.full((self.num_classes - 2,), math.log(math.e - 1.0))

    def thresholds(self) -> mx.array:
        """The ordered cut-points θ_1 < … < θ_{K-1}."""
        steps = nn.softplus(self.threshold_deltas)
        return mx.concatenate([self.threshold_first, self.threshold_first + mx.cumsum(steps)])

    def __call__(self, features: mx.array) -> mx.array:
        score = self.output(self.features(features))  # (batch, 1)
        return self.thresholds()[None, :] - score

    def _targets(self, outputs: mx.array, targets: Any) -> mx.array:
        targets = self._target_vector(outputs, targets, "ordinal targets must have shape (batch,)")
        return self._class_indices(targets, self.num_classes, range_name="ordinal targets")

    def probabilities(self, outputs: mx.array) -> mx.array:
        """Class probabilities (batch, num_classes), as mlx arrays (differentiable)."""
        return cumulative_probabilities(outputs)

    def loss(self, outputs: mx.array, targets: Any, *, reduction: str = "mean") -> mx.array:
        """Negative log-likelihood of the true class under ``probabilities``."""
        check_reduction(reduction)
        if outputs.ndim != 2 or outputs.shape[1] != self.num_classes - 1:
            raise ValueError(
                f"expected outputs (batch, {self.num_classes - 1}), got {outputs.shape}"
            )
        index = self._targets(outputs, targets)
        proba = self.probabilities(outputs)
        picked = mx.take_along_axis(proba, index[:, None], axis=1)[:, 0]
        tiny = mx.array(np.finfo(np.float32).tiny, dtype=picked.dtype)
        nll = -mx.log(mx.maximum(picked, tiny))
        weights = None
        if self._class_weights is not None:
            weights = mx.array(self._class_weights, dtype=nll.dtype)[index]
            nll = nll * weights
        return _reduce(nll, reduction, weights)

    def predict_proba(self, outputs: Any) -> np.ndarray:
        """Class probabilities (batch, num_classes) as numpy."""
        return cumulative_probabilities_np(to_numpy(outputs).reshape(-1, self.num_classes - 1))

    def expected_value(self, outputs: Any) -> np.ndarray:
        """E[y] = Σ k·P(y = k), a continuous score in [0, K-1]."""
        return self.predict_proba(outputs) @ np.arange(self.num_classes, dtype=np.float64)

    def predict(self, outputs: Any, *, method: str | None = None) -> np.ndarray:
        """Class indices by ``method`` (default: the head's ``prediction`` setting)."""
        method = method or self.prediction
        if method not in ORDINAL_PREDICTIONS:
            raise ValueError(
                f"unknown method {method!r}; choose one of {', '.join(ORDINAL_PREDICTIONS)}"
            )
        proba = self.predict_proba(outputs)
        if method == "argmax":
            return np.argmax(proba, axis=1).astype(np.int64)
        if method == "expected":
            expected = proba @ np.arange(self.num_classes, dtype=np.float64)
            return np.clip(np.rint(expected), 0, self.num_classes - 1).astype(np.int64)
        cdf = np.cumsum(proba, axis=1)
        return np.argmax(cdf >= 0.5 - 1e-12, axis=1).astype(np.int64)

    def metrics(self, outputs: Any, targets: Any) -> dict[str, float]:
        """quadratic_weighted_kappa (over the fixed scale 0..K-1), accuracy, mae of the
        predicted class, and spearman of the expected value."""
        truth = labels_to_numpy(targets).reshape(-1)
        labels = self.predict(outputs)
        expected = self.expected_value(outputs)
        return {
            "quadratic_weighted_kappa": M.quadratic_weighted_kappa(
                truth, labels, labels=range(self.num_classes)
            ),
            "accuracy": M.accuracy(truth, labels),
            "mae": M.mae(truth, labels),
            "spearman": M.spearman(truth, expected) if truth.size > 1 else float("nan"),
        }
