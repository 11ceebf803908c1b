"""Multiclass classification: softmax over ``num_classes`` logits; cross-entropy (with label
smoothing and class weights) or focal loss; temperature scaling."""

from __future__ import annotations

from typing import Any, ClassVar

import mlx.core as mx
import numpy as np

from .. import metrics as M
from ..calibration import fit_temperature
from ..losses import check_reduction, cross_entropy, multiclass_focal_loss
from ..registry import register_head
from ._base import (
    TaskHead,
    any_true,
    count_argument,
    finite_float,
    labels_to_numpy,
    to_mx,
    to_numpy,
)

MULTICLASS_LOSSES = ("ce", "focal")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@register_head("multiclass")
class MulticlassClassificationHead(TaskHead):
    """Features -> (batch, num_classes) logits.

    Args:
        hidden_size: width of the input features.
        num_classes: number of classes (>= 2); targets are indices 0..num_classes-1.
        loss: "ce" (softmax cross-entropy) or "focal".
        label_smoothing: cross-entropy label smoothing in [0, 1).
        class_weights: one weight per class (CE weights, or focal alpha).
        focal_gamma: focal-loss focusing parameter.
        temperature: logit temperature (see ``calibrate``).
        hidden_dims, dropout, activation, body_bias, body_norm: optional MLP body.
    """

    outputs_argument = "num_classes"
    output_kind = "label"
    config_arguments = ("num_classes", "loss", "label_smoothing", "class_weights", "focal_gamma")
    fitted_floats: ClassVar[dict[str, float]] = {"temperature": 1.0}

    def __init__(
        self,
        hidden_size: int,
        *,
        num_classes: int,
        loss: str = "ce",
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        focal_gamma: float = 2.0,
        temperature: float = 1.0,
        **body: Any,
    ):
        num_classes = count_argument(num_classes, "num_classes", minimum=2)
        super().__init__(hidden_size, num_classes, **body)
        if loss not in MULTICLASS_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(MULTICLASS_LOSSES)}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if loss == "focal" and label_smoothing:
            raise ValueError("label_smoothing applies to loss='ce' only")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(f"class_weights needs {num_classes} entries, got {len(class_weights)}")
        self.num_classes = num_classes
        self.loss_name = loss
        self.label_smoothing = float(label_smoothing)
        self._class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.focal_gamma = float(focal_gamma)
        self.temperature = finite_float(temperature, "temperature")

    def __call__(self, features: mx.array) -> mx.array:
        return self.output(self.features(features))

    def _targets(self, outputs: mx.array, targets: Any) -> mx.array:
        soft = to_mx(targets)
        if soft.ndim == 2 and soft.shape[1] == self.num_classes and self.num_classes > 1:
            return self._soft_targets(outputs, soft)
        targets = self._target_vector(
            outputs,
            targets,
            "multiclass targets must be class indices of shape (batch,) or class "
            f"probabilities of shape (batch, {self.num_classes})",
        )
        return self._class_indices(targets, self.num_classes)

    def _soft_targets(self, outputs: mx.array, targets: mx.array) -> mx.array:
        """Class probabilities (batch, num_classes), e.g. a teacher's: rows in [0, 1] that
        sum to 1. They train with cross-entropy only."""
        self._check_batch(outputs, targets)
        if self.loss_name == "focal":
            raise ValueError("soft (probability) targets train with loss='ce', not focal")
        targets = targets.astype(outputs.dtype)
        if any_true((targets < 0) | (targets > 1)) or any_true(
            mx.abs(targets.sum(axis=1) - 1) > 1e-3
        ):
            raise ValueError(
                "soft multiclass targets must be probabilities: rows in [0, 1] summing to 1"
            )
        return targets

    def loss(self, outputs: mx.array, targets: Any, *, reduction: str = "mean") -> mx.array:
        check_reduction(reduction)
        targets = self._targets(outputs, targets)
        if self.loss_name == "focal":
            return multiclass_focal_loss(
                outputs,
                targets,
                gamma=self.focal_gamma,
                class_weights=self._class_weights,
                reduction=reduction,
            )
        return cross_entropy(
            outputs,
            targets,
            class_weights=self._class_weights,
            label_smoothing=self.label_smoothing,
            reduction=reduction,
        )

    def predict_proba(self, outputs: Any) -> np.ndarray:
        """Calibrated class probabilities (batch, num_classes)."""
        return softmax(to_numpy(outputs) / self.temperature)

    def predict(self, outputs: Any) -> np.ndarray:
        """Most probable class index per sample."""
        return np.argmax(to_numpy(outputs), axis=1).astype(np.int64)

    def calibrate(self, logits: Any, targets: Any) -> float:
        """Fit the temperature minimising validation NLL; stores and returns it."""
        self.temperature = fit_temperature(to_numpy(logits), labels_to_numpy(targets).reshape(-1))
        return self.temperature

    def metrics(self, outputs: Any, targets: Any) -> dict[str, float]:
        """accuracy, f1_macro, f1_weighted, mcc, log_loss, top_2_accuracy and roc_auc_ovr
        (nan unless every class occurs in ``targets``)."""
        truth = labels_to_numpy(targets).reshape(-1)
        proba = self.predict_proba(outputs)
        labels = np.argmax(proba, axis=1)
        classes = list(range(self.num_classes))
        all_present = np.unique(truth).size == self.num_classes
        return {
            "accuracy": M.accuracy(truth, labels),
            "f1_macro": M.f1(truth, labels, average="macro"),
            "f1_weighted": M.f1(truth, labels, average="weighted"),
            "matthews_corrcoef": M.matthews_corrcoef(truth, labels),
            "log_loss": M.log_loss(truth, proba, labels=classes),
            "top_2_accuracy": M.top_k_accuracy(truth, proba, k=2, labels=classes),
            "roc_auc_ovr": M.roc_auc(truth, proba, labels=classes) if all_present else float("nan"),
        }
