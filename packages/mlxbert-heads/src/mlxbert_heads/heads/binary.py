"""Binary classification: one logit, sigmoid; BCE or focal loss, temperature scaling and a
tuned decision threshold."""

from __future__ import annotations

from typing import Any, ClassVar

import mlx.core as mx
import numpy as np

from .. import metrics as M
from ..calibration import choose_threshold, fit_temperature
from ..losses import binary_cross_entropy, binary_focal_loss, check_reduction
from ..registry import register_head
from ._base import TaskHead, any_true, finite_float, labels_to_numpy, to_numpy

BINARY_LOSSES = ("bce", "focal")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def sigmoid_loss(
    head: TaskHead, outputs: mx.array, targets: mx.array, reduction: str, **bce_weights: Any
) -> mx.array:
    """The loss of a head of independent sigmoids (binary, multilabel): focal with the head's
    ``focal_gamma`` / ``focal_alpha`` when its loss is ``"focal"``, else BCE with
    ``bce_weights`` (``pos_weight``, ``class_weights``)."""
    if head.loss_name == "focal":
        return binary_focal_loss(
            outputs, targets, gamma=head.focal_gamma, alpha=head.focal_alpha, reduction=reduction
        )
    return binary_cross_entropy(outputs, targets, reduction=reduction, **bce_weights)


@register_head("binary")
class BinaryClassificationHead(TaskHead):
    """Features -> one logit per sample, shape (batch,).

    Args:
        hidden_size: width of the input features.
        loss: "bce" (sigmoid cross-entropy) or "focal".
        pos_weight: weight of the positive term of BCE (e.g. n_negative / n_positive).
        class_weights: (w_negative, w_positive) per-sample weights (weighted mean).
        focal_gamma, focal_alpha: focal-loss focusing and balance parameters.
        threshold: decision threshold on calibrated probabilities (see ``fit_threshold``).
        temperature: logit temperature (see ``calibrate``); 1.0 = uncalibrated.
        hidden_dims, dropout, activation, body_bias, body_norm: optional MLP body before the output layer.
    """

    output_kind = "label"
    config_arguments = ("loss", "pos_weight", "class_weights", "focal_gamma", "focal_alpha")
    fitted_floats: ClassVar[dict[str, float]] = {"temperature": 1.0, "threshold": 0.5}

    def __init__(
        self,
        hidden_size: int,
        *,
        loss: str = "bce",
        pos_weight: float | None = None,
        class_weights: tuple[float, float] | list[float] | None = None,
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        threshold: float = 0.5,
        temperature: float = 1.0,
        **body: Any,
    ):
        super().__init__(hidden_size, 1, **body)
        if loss not in BINARY_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(BINARY_LOSSES)}")
        if loss == "focal" and (pos_weight is not None or class_weights is not None):
            raise ValueError(
                "focal loss balances classes with focal_alpha, not pos_weight/class_weights"
            )
        if class_weights is not None and len(class_weights) != 2:
            raise ValueError("class_weights for a binary head is (w_negative, w_positive)")
        if pos_weight is not None and pos_weight <= 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        if focal_alpha is not None and not 0 <= focal_alpha <= 1:
            raise ValueError(f"focal_alpha must be in [0, 1], got {focal_alpha}")
        self.loss_name = loss
        self.pos_weight = None if pos_weight is None else float(pos_weight)
        self._class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.focal_gamma = float(focal_gamma)
        self.focal_alpha = None if focal_alpha is None else float(focal_alpha)
        self.threshold = finite_float(threshold, "threshold")
        self.temperature = finite_float(temperature, "temperature")

    def __call__(self, features: mx.array) -> mx.array:
        return self.output(self.features(features))[:, 0]

    # -- training -------------------------------------------------------------------------
    def _targets(self, outputs: mx.array, targets: Any) -> mx.array:
        targets = self._target_vector(
            outputs, targets, "binary targets must have shape (batch,) with values in [0, 1]"
        )
        if any_true((targets < 0) | (targets > 1)):
            raise ValueError("binary targets must lie in [0, 1] (0/1 labels or soft labels)")
        return targets.astype(outputs.dtype)

    def loss(self, outputs: mx.array, targets: Any, *, reduction: str = "mean") -> mx.array:
        """Training loss on raw logits (temperature is an inference-time correction)."""
        check_reduction(reduction)
        targets = self._targets(outputs, targets)
        return sigmoid_loss(
            self,
            outputs,
            targets,
            reduction,
            pos_weight=self.pos_weight,
            class_weights=self._class_weights,
        )

    # -- inference --------------------------------------------------------------------------
    def predict_proba(self, outputs: Any) -> np.ndarray:
        """Calibrated P(positive), shape (batch,)."""
        return sigmoid(to_numpy(outputs).reshape(-1) / self.temperature)

    def predict(self, outputs: Any) -> np.ndarray:
        """0/1 labels: calibrated probability >= the stored threshold."""
        return (self.predict_proba(outputs) >= self.threshold).astype(np.int64)

    # -- fitting on validation data ---------------------------------------------------------
    def calibrate(self, logits: Any, targets: Any) -> float:
        """Fit the temperature minimising validation NLL; stores and returns it."""
        self.temperature = fit_temperature(to_numpy(logits).reshape(-1), labels_to_numpy(targets))
        return self.temperature

    def fit_threshold(self, outputs: Any, targets: Any, *, criterion: str = "f1") -> float:
        """Choose the decision threshold maximising ``criterion`` ("f1", "youden",
        "accuracy") on validation outputs; stores and returns it. Calibrate first if you
        calibrate at all: the threshold applies to calibrated probabilities."""
        self.threshold = choose_threshold(
            self.predict_proba(outputs), labels_to_numpy(targets).reshape(-1), criterion=criterion
        )
        return self.threshold

    def fit_decision(self, outputs: Any, targets: Any, *, criterion: str = "f1") -> dict | None:
        if np.unique(labels_to_numpy(targets)).size < 2:
            return None  # nothing to choose between: the threshold stays
        return {"threshold": self.fit_threshold(outputs, targets, criterion=criterion)}

    def metrics(self, outputs: Any, targets: Any) -> dict[str, float]:
        """roc_auc (nan with a single class), f1, accuracy, precision, recall, mcc, log_loss
        from raw outputs (logits) and 0/1 targets."""
        truth = labels_to_numpy(targets).reshape(-1)
        proba = self.predict_proba(outputs)
        labels = (proba >= self.threshold).astype(np.int64)
        both = np.unique(truth).size == 2
        return {
            "roc_auc": M.roc_auc(truth, proba) if both else float("nan"),
            "f1": M.f1(truth, labels),
            "accuracy": M.accuracy(truth, labels),
            "precision": M.precision(truth, labels),
            "recall": M.recall(truth, labels),
            "matthews_corrcoef": M.matthews_corrcoef(truth, labels),
            "log_loss": M.log_loss(truth, proba, labels=[0, 1]),
        }
