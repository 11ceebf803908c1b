"""Regression: one or more continuous targets, MSE / MAE / Huber or Gaussian NLL with a
predicted variance, on standardised targets stored with the head."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from .. import metrics as M
from ..losses import check_reduction, gaussian_nll_loss, huber_loss, mae_loss, mse_loss
from ..registry import register_head
from ._base import TaskHead, count_argument, to_mx, to_numpy
from ._scaling import TargetScaler

REGRESSION_LOSSES = ("mse", "mae", "huber")


def point_loss(name: str, predictions, targets, delta: float, reduction: str):
    if name == "mse":
        return mse_loss(predictions, targets, reduction=reduction)
    if name == "mae":
        return mae_loss(predictions, targets, reduction=reduction)
    return huber_loss(predictions, targets, delta=delta, reduction=reduction)


@register_head("regression")
class RegressionHead(TaskHead):
    """Features -> (batch, num_targets) standardised predictions, or (batch, num_targets, 2)
    [mean, log-variance] with ``uncertainty=True``.

    Call ``fit_scaler(train_targets)`` before training: losses compare outputs with
    standardised targets and ``predict`` maps outputs back to the original units.

    Args:
        hidden_size: width of the input features.
        num_targets: number of regression targets.
        loss: "mse", "mae" or "huber" (ignored for the mean when ``uncertainty``: the Gaussian
            NLL trains mean and variance together).
        huber_delta: Huber transition point, in standardised units.
        uncertainty: also predict a variance, trained by Gaussian negative log-likelihood.
        hidden_dims, dropout, activation, body_bias, body_norm: optional MLP body.
    """

    outputs_argument = "num_targets"
    output_kind = "value"
    config_arguments = ("num_targets", "loss", "huber_delta", "uncertainty")

    def __init__(
        self,
        hidden_size: int,
        *,
        num_targets: int = 1,
        loss: str = "mse",
        huber_delta: float = 1.0,
        uncertainty: bool = False,
        **body: Any,
    ):
        num_targets = count_argument(num_targets, "num_targets")
        super().__init__(hidden_size, num_targets * (2 if uncertainty else 1), **body)
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(REGRESSION_LOSSES)}")
        if huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta}")
        self.num_targets = num_targets
        self.loss_name = loss
        self.huber_delta = float(huber_delta)
        self.uncertainty = bool(uncertainty)
        self._scaler = TargetScaler(size=self.num_targets)

    def __call__(self, features: mx.array) -> mx.array:
        out = self.output(self.features(features))
        if self.uncertainty:
            return out.reshape(out.shape[0], self.num_targets, 2)
        return out

    # -- scaling -----------------------------------------------------------------------------
    def fit_scaler(self, targets: Any) -> RegressionHead:
        """Store the mean and std of the training targets (original units)."""
        self._scaler.fit(targets)
        return self

    @property
    def target_mean(self) -> np.ndarray:
        return self._scaler.mean.copy()

    @property
    def target_std(self) -> np.ndarray:
        return self._scaler.std.copy()

    def _standardised_targets(self, outputs: mx.array, targets: Any) -> mx.array:
        targets = to_mx(targets).astype(mx.float32)
        self._check_batch(outputs, targets)
        if targets.ndim == 1 and self.num_targets == 1:
            targets = targets[:, None]
        if targets.shape != (outputs.shape[0], self.num_targets):
            raise ValueError(
                f"regression targets must have shape (batch, {self.num_targets})"
                + (" or (batch,)" if self.num_targets == 1 else "")
                + f", got {tuple(targets.shape)}"
            )
        mean = mx.array(self._scaler.mean, dtype=mx.float32)
        std = mx.array(self._scaler.std, dtype=mx.float32)
        return ((targets - mean) / std).astype(outputs.dtype)

    # -- training ------------------------------------------------------------------------------
    def loss(self, outputs: mx.array, targets: Any, *, reduction: str = "mean") -> mx.array:
        """Loss in standardised units; ``targets`` in original units."""
        check_reduction(reduction)
        scaled = self._standardised_targets(outputs, targets)
        if self.uncertainty:
            return gaussian_nll_loss(outputs[..., 0], outputs[..., 1], scaled, reduction=reduction)
        return point_loss(self.loss_name, outputs, scaled, self.huber_delta, reduction)

    # -- inference -------------------------------------------------------------------------------
    def _squeeze(self, values: np.ndarray) -> np.ndarray:
        return values[:, 0] if self.num_targets == 1 else values

    def predict(self, outputs: Any) -> np.ndarray:
        """Predictions in original units: (batch,) for one target, else (batch, num_targets)."""
        values = to_numpy(outputs)
        mean = values[..., 0] if self.uncertainty else values
        mean = mean.reshape(-1, self.num_targets)
        return self._squeeze(mean * self._scaler.std + self._scaler.mean)

    def predict_std(self, outputs: Any) -> np.ndarray:
        """Predicted standard deviation in original units (needs ``uncertainty=True``)."""
        if not self.uncertainty:
            raise ValueError("this head predicts no variance; build it with uncertainty=True")
        log_var = to_numpy(outputs)[..., 1].reshape(-1, self.num_targets)
        return self._squeeze(np.exp(0.5 * log_var) * self._scaler.std)

    def metrics(self, outputs: Any, targets: Any) -> dict[str, float]:
        """rmse, mse, mae, r2 (averaged over targets), pearson and spearman (averaged over
        targets; nan for constant columns) in original units."""
        pred = self.predict(outputs).reshape(-1, self.num_targets)
        truth = to_numpy(targets).reshape(-1, self.num_targets)
        result = {
            "rmse": M.rmse(truth, pred),
            "mse": M.mse(truth, pred),
            "mae": M.mae(truth, pred),
            "r2": M.r2(truth, pred) if truth.shape[0] > 1 else float("nan"),
        }
        for name in ("pearson", "spearman"):
            fn = getattr(M, name)
            result[name] = (
                float(np.mean([fn(truth[:, j], pred[:, j]) for j in range(self.num_targets)]))
                if truth.shape[0] > 1
                else float("nan")
            )
        return result

    # -- config ----------------------------------------------------------------------------------
    def _fitted_state(self) -> dict[str, Any]:
        return {
            "target_mean": self._scaler.state()["mean"],
            "target_std": self._scaler.state()["std"],
        }

    def _load_fitted_state(self, state: dict[str, Any]) -> None:
        self._scaler = TargetScaler(
            state.get("target_mean"), state.get("target_std"), size=self.num_targets
        )
