"""Multi-horizon forecasting from a pooled representation, optional numeric history and
covariates, with an optional trend/seasonal split of the history (DLinear-style)."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import metrics as M
from ..losses import check_reduction
from ..registry import register_head
from ._base import TaskHead, count_argument, to_mx, to_numpy
from ._scaling import TargetScaler
from .regression import REGRESSION_LOSSES, point_loss

DECOMPOSITIONS = (None, "moving_average")


def moving_average_matrix(length: int, kernel_size: int) -> np.ndarray:
    """(length, length) matrix A with trend = history @ A.T: a centred moving average whose
    window is padded by repeating the edge values (so the trend keeps the series' level)."""
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    matrix = np.zeros((length, length))
    for t in range(length):
        for offset in range(-before, after + 1):
            matrix[t, min(max(t + offset, 0), length - 1)] += 1.0 / kernel_size
    return matrix


@register_head("timeseries")
class TimeSeriesRegressionHead(TaskHead):
    """Features (+ ``history`` (batch, history_length), + ``covariates`` (batch,
    num_covariates)) -> (batch, horizon) standardised forecasts.

    The forecast is the sum of a map of the features and linear maps of the (standardised)
    history — or of its moving-average trend and the seasonal remainder when
    ``decomposition="moving_average"`` — and of the covariates. Call ``fit_scaler`` on the
    training targets (and history) first; ``predict`` returns original units.

    Args:
        hidden_size: width of the input features.
        horizon: number of future steps H.
        history_length: length L of the numeric history passed as ``history`` (0 = none).
        num_covariates: number of extra numeric features passed as ``covariates`` (0 = none).
        decomposition: None or "moving_average" (needs history_length > 0).
        kernel_size: moving-average window.
        loss: "mse", "mae" or "huber"; huber_delta in standardised units.
        hidden_dims, dropout, activation, body_bias, body_norm: optional MLP body on the features.
    """

    outputs_argument = "horizon"
    output_kind = "value"
    config_arguments = (
        "horizon",
        "history_length",
        "num_covariates",
        "decomposition",
        "kernel_size",
        "loss",
        "huber_delta",
    )

    extra_inputs = ("history", "covariates")

    def __init__(
        self,
        hidden_size: int,
        *,
        horizon: int,
        history_length: int = 0,
        num_covariates: int = 0,
        decomposition: str | None = None,
        kernel_size: int = 5,
        loss: str = "mse",
        huber_delta: float = 1.0,
        **body: Any,
    ):
        horizon = count_argument(horizon, "horizon")
        super().__init__(hidden_size, horizon, **body)
        if history_length < 0 or num_covariates < 0:
            raise ValueError("history_length and num_covariates must be >= 0")
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(
                f"unknown decomposition {decomposition!r}; choose None or 'moving_average'"
            )
        if decomposition and history_length == 0:
            raise ValueError("decomposition needs a history: set history_length > 0")
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(REGRESSION_LOSSES)}")
        self.horizon = horizon
        self.history_length = int(history_length)
        self.num_covariates = int(num_covariates)
        self.decomposition = decomposition
        self.kernel_size = int(kernel_size)
        self.loss_name = loss
        self.huber_delta = float(huber_delta)
        self._scaler = TargetScaler(size=1)
        if self.history_length:
            self.history_proj = nn.Linear(self.history_length, self.horizon)
            if decomposition:
                self.seasonal_proj = nn.Linear(self.history_length, self.horizon)
                self._trend_matrix = mx.array(
                    moving_average_matrix(self.history_length, self.kernel_size).T, dtype=mx.float32
                )
        if self.num_covariates:
            self.covariate_proj = nn.Linear(self.num_covariates, self.horizon)

    # -- scaling -------------------------------------------------------------------------------
    def fit_scaler(self, targets: Any, history: Any = None) -> TimeSeriesRegressionHead:
        """One mean/std over every training target value (and history value, if given)."""
        values = to_numpy(targets).reshape(-1)
        if history is not None:
            values = np.concatenate([values, to_numpy(history).reshape(-1)])
        self._scaler.fit(values)
        return self

    def _scale(self, values: mx.array) -> mx.array:
        return (values - float(self._scaler.mean[0])) / float(self._scaler.std[0])

    # -- forward -------------------------------------------------------------------------------
    def _extra(self, values: Any, size: int, name: str, batch: int) -> mx.array | None:
        if size == 0:
            if values is not None:
                raise ValueError(f"this head was built without {name}: set its length to use it")
            return None
        if values is None:
            raise ValueError(f"this head needs {name} of shape (batch, {size})")
        values = to_mx(values, name).astype(mx.float32)
        if values.shape != (batch, size):
            raise ValueError(f"{name} must have shape ({batch}, {size}), got {tuple(values.shape)}")
        return values

    def __call__(self, features: mx.array, history: Any = None, covariates: Any = None) -> mx.array:
        hidden = self.features(features)
        out = self.output(hidden)
        batch = out.shape[0]
        history = self._extra(history, self.history_length, "history", batch)
        if history is not None:
            scaled = self._scale(history).astype(out.dtype)
            if self.decomposition:
                trend = scaled @ self._trend_matrix.astype(out.dtype)
                out = out + self.history_proj(trend) + self.seasonal_proj(scaled - trend)
            else:
                out = out + self.history_proj(scaled)
        covariates = self._extra(covariates, self.num_covariates, "covariates", batch)
        if covariates is not None:
            out = out + self.covariate_proj(covariates.astype(out.dtype))
        return out

    def decompose(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """(trend, seasonal) of a history batch in original units (moving-average split)."""
        values = to_numpy(history).reshape(-1, self.history_length)
        trend = values @ moving_average_matrix(self.history_length, self.kernel_size).T
        return trend, values - trend

    # -- training / inference --------------------------------------------------------------------
    def loss(self, outputs: mx.array, targets: Any, *, reduction: str = "mean") -> mx.array:
        """Loss in standardised units; ``targets`` (batch, horizon) in original units."""
        check_reduction(reduction)
        targets = to_mx(targets).astype(mx.float32)
        self._check_batch(outputs, targets)
        if targets.ndim == 1 and self.horizon == 1:
            targets = targets[:, None]
        if targets.shape != outputs.shape:
            raise ValueError(
                f"forecast targets must have shape (batch, {self.horizon}), got {tuple(targets.shape)}"
            )
        return point_loss(
            self.loss_name,
            outputs,
            self._scale(targets).astype(outputs.dtype),
            self.huber_delta,
            reduction,
        )

    def predict(self, outputs: Any) -> np.ndarray:
        """Forecasts (batch, horizon) in original units."""
        values = to_numpy(outputs).reshape(-1, self.horizon)
        return values * self._scaler.std[0] + self._scaler.mean[0]

    def metrics(self, outputs: Any, targets: Any, history: Any = None) -> dict[str, float]:
        """mape, rmse, mae, and directional_accuracy — relative to the last history value when
        ``history`` is given, else along the horizon (nan for horizon 1 without history)."""
        pred = self.predict(outputs)
        truth = to_numpy(targets).reshape(-1, self.horizon)
        if history is not None:
            last = to_numpy(history).reshape(truth.shape[0], -1)[:, -1]
            direction = M.directional_accuracy(truth, pred, y_last=last)
        elif self.horizon > 1:
            direction = M.directional_accuracy(truth, pred)
        else:
            direction = float("nan")
        return {
            "mape": M.mape(truth, pred),
            "rmse": M.rmse(truth, pred),
            "mae": M.mae(truth, pred),
            "directional_accuracy": direction,
        }

    def _fitted_state(self) -> dict[str, Any]:
        state = self._scaler.state()
        return {"target_mean": state["mean"][0], "target_std": state["std"][0]}

    def _load_fitted_state(self, state: dict[str, Any]) -> None:
        self._scaler = TargetScaler(
            [state.get("target_mean", 0.0)], [state.get("target_std", 1.0)], size=1
        )
