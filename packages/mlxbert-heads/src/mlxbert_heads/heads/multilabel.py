"""Multilabel classification: an independent sigmoid per label, BCE or focal loss, and
per-label decision thresholds tuned on validation data."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from .. import metrics as M
from ..calibration import MIN_POSITIVES, choose_thresholds
from ..losses import check_reduction
from ..registry import register_head
from ._base import TaskHead, any_true, count_argument, labels_to_numpy, to_mx, to_numpy
from .binary import sigmoid, sigmoid_loss

MULTILABEL_LOSSES = ("bce", "focal")


@register_head("multilabel")
class MultilabelClassificationHead(TaskHead):
    """Features -> (batch, num_labels) logits; targets are 0/1 indicator matrices.

    Args:
        hidden_size: width of the input features.
        num_labels: number of labels.
        loss: "bce" or "focal".
        pos_weight: BCE positive weight, one float or one per label (n_neg / n_pos is usual).
        focal_gamma, focal_alpha: focal-loss parameters.
        thresholds: per-label decision thresholds (default 0.5; see ``fit_thresholds``).
        hidden_dims, dropout, activation, body_bias, body_norm: optional MLP body.
    """

    outputs_argument = "num_labels"
    output_kind = "labels"
    config_arguments = ("num_labels", "loss", "pos_weight", "focal_gamma", "focal_alpha")

    def __init__(
        self,
        hidden_size: int,
        *,
        num_labels: int,
        loss: str = "bce",
        pos_weight: float | list[float] | None = None,
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        thresholds: list[float] | None = None,
        **body: Any,
    ):
        num_labels = count_argument(num_labels, "num_labels")
        super().__init__(hidden_size, num_labels, **body)
        if loss not in MULTILABEL_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(MULTILABEL_LOSSES)}")
        if loss == "focal" and pos_weight is not None:
            raise ValueError("focal loss balances labels with focal_alpha, not pos_weight")
        self.num_labels = num_labels
        self.loss_name = loss
        if pos_weight is not None:
            weights = np.broadcast_to(np.asarray(pos_weight, dtype=np.float64), (num_labels,))
            if np.any(weights <= 0):
                raise ValueError("pos_weight must be > 0")
            pos_weight = [float(w) for w in weights]
        self._pos_weight = pos_weight
        self.focal_gamma = float(focal_gamma)
        self.focal_alpha = None if focal_alpha is None else float(focal_alpha)
        self._thresholds = self._checked_thresholds(thresholds)

    @property
    def thresholds(self) -> list[float]:
        """Per-label decision thresholds on probabilities."""
        return list(self._thresholds)

    def _checked_thresholds(self, thresholds) -> list[float]:
        if thresholds is None:
            return [0.5] * self.num_labels
        values = [float(t) for t in thresholds]
        if len(values) != self.num_labels or not all(np.isfinite(values)):
            raise ValueError(f"thresholds needs {self.num_labels} finite values")
        return values

    def __call__(self, features: mx.array) -> mx.array:
        return self.output(self.features(features))

    def loss(self, outputs: mx.array, targets: Any, *, reduction: str = "mean") -> mx.array:
        check_reduction(reduction)
        targets = to_mx(targets)
        if targets.shape != outputs.shape:
            raise ValueError(
                f"multilabel targets must be a 0/1 matrix of shape {tuple(outputs.shape)} "
                f"(batch, num_labels), got {tuple(targets.shape)}"
            )
        if any_true((targets < 0) | (targets > 1)):
            raise ValueError(
                "multilabel targets must lie in [0, 1] (0/1 indicators or soft labels)"
            )
        targets = targets.astype(outputs.dtype)
        pos_weight = None if self._pos_weight is None else mx.array(self._pos_weight)
        return sigmoid_loss(self, outputs, targets, reduction, pos_weight=pos_weight)

    def predict_proba(self, outputs: Any) -> np.ndarray:
        """Per-label probabilities (batch, num_labels)."""
        return sigmoid(to_numpy(outputs).reshape(-1, self.num_labels))

    def predict(self, outputs: Any) -> np.ndarray:
        """0/1 matrix: each label's probability against its own threshold."""
        return (self.predict_proba(outputs) >= np.asarray(self._thresholds)).astype(np.int64)

    def fit_thresholds(
        self, outputs: Any, targets: Any, *, criterion: str = "f1", min_positives: int = 0
    ) -> list[float]:
        """Per-label thresholds maximising ``criterion`` (default F1) on validation data.

        Labels with fewer than ``min_positives`` positive examples (or a single class) get
        one global threshold, chosen over all labels pooled (micro-averaged), instead of
        one fitted to a handful of rows; with ``min_positives=0`` they keep their current
        threshold (see :func:`mlxbert_heads.calibration.choose_thresholds`)."""
        proba = self.predict_proba(outputs)
        truth = labels_to_numpy(targets).reshape(-1, self.num_labels)
        if truth.shape != proba.shape:
            raise ValueError(f"targets must have shape {proba.shape}, got {truth.shape}")
        self._thresholds = choose_thresholds(
            proba,
            truth,
            criterion=criterion,
            min_positives=min_positives,
            default=self._thresholds,
        )
        return self.thresholds

    def fit_decision(self, outputs: Any, targets: Any, *, criterion: str = "f1") -> dict:
        return {
            "thresholds": self.fit_thresholds(
                outputs, targets, criterion=criterion, min_positives=MIN_POSITIVES
            )
        }

    def metrics(self, outputs: Any, targets: Any) -> dict[str, float]:
        """f1_micro, f1_macro, subset_accuracy, hamming_loss, and roc_auc_macro averaged over
        the labels that have both classes in ``targets`` (nan if none)."""
        truth = labels_to_numpy(targets).reshape(-1, self.num_labels).astype(np.int64)
        proba = self.predict_proba(outputs)
        labels = (proba >= np.asarray(self._thresholds)).astype(np.int64)
        valid = [j for j in range(self.num_labels) if np.unique(truth[:, j]).size == 2]
        auc = M.roc_auc(truth[:, valid], proba[:, valid]) if valid else float("nan")
        return {
            "f1_micro": M.f1(truth, labels, average="micro"),
            "f1_macro": M.f1(truth, labels, average="macro"),
            "subset_accuracy": M.subset_accuracy(truth, labels),
            "hamming_loss": M.hamming_loss(truth, labels),
            "roc_auc_macro": auc,
        }

    def _fitted_state(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds}

    def _load_fitted_state(self, state: dict[str, Any]) -> None:
        self._thresholds = self._checked_thresholds(state.get("thresholds"))
