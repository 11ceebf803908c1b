"""Forecasting from a table: each row's text plus the series' recent values predict the next
``horizon`` values (mlxbert-heads' ``TimeSeriesRegressionHead``).

A table holds one or several series (``group_col``), ordered by ``time_col``. For the row at
time t the model reads the row's text and the ``history`` values before t, and forecasts the
``horizon`` values from t on (t, t+1, ...). Training uses the rows whose whole horizon is
known, and validates on the last ``valid_fraction`` of every series (never on a random split,
which would leak the future). At prediction time the input holds the same columns; the target
may be empty on the rows to forecast, and missing history values are carried forward from
the last known one (at a series' start, its first value is repeated).

Metrics: MAPE (the selection metric, lower is better), RMSE, MAE and directional accuracy
(does the forecast move the way the series did from its last known value?).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlxbert_heads import metrics as M

from .errors import InputError, missing_columns_error

PRIMARY = "mape"


@dataclass
class TimeSeriesSpec:
    """The forecasting set-up: which column, ordered by what, split by what, how far ahead
    and how much history."""

    target: str
    time_col: str
    group_col: str | None = None
    horizon: int = 1
    history: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise InputError(f"--horizon must be >= 1, got {self.horizon}")
        if self.history < 0:
            raise InputError(f"--history must be >= 0, got {self.history}")

    @property
    def output_columns(self) -> list[str]:
        """``target_1`` (the row's own time) ... ``target_H``."""
        return [f"{self.target}_{k + 1}" for k in range(self.horizon)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeSeriesSpec:
        return cls(**data)


@dataclass
class Windows:
    """Per row (in the table's order): ``history`` (n, history) and ``targets`` (n, horizon,
    NaN where unknown); ``last`` the last known value before the row; ``complete`` marks
    rows whose whole horizon is known; ``position`` is each row's index within its series
    (time order)."""

    history: np.ndarray
    targets: np.ndarray
    last: np.ndarray
    complete: np.ndarray
    position: np.ndarray
    series: np.ndarray


def _values(frame: pd.DataFrame, spec: TimeSeriesSpec, where: str) -> np.ndarray:
    needed = [spec.target, spec.time_col, *([spec.group_col] if spec.group_col else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise missing_columns_error(missing, frame.columns, where)
    values = pd.to_numeric(frame[spec.target], errors="coerce")
    bad = frame[spec.target].notna() & values.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{where}: target {spec.target!r} must be numbers; row {row + 2} holds "
            f"{frame[spec.target].iloc[row]!r}"
        )
    return values.to_numpy(dtype=np.float64)


def windows(frame: pd.DataFrame, spec: TimeSeriesSpec, where: str = "the table") -> Windows:
    """History and target windows of every row (see the module doc)."""
    values = _values(frame, spec, where)
    n = len(frame)
    history = np.zeros((n, spec.history), dtype=np.float64)
    targets = np.full((n, spec.horizon), np.nan)
    last = np.zeros(n, dtype=np.float64)
    position = np.zeros(n, dtype=np.int64)
    keys = frame[spec.group_col].astype(str) if spec.group_col else pd.Series(["_"] * n)
    series = pd.factorize(keys)[0]
    times = frame[spec.time_col]
    for s in np.unique(series):
        rows = np.flatnonzero(series == s)
        order = rows[np.argsort(times.iloc[rows].to_numpy(), kind="mergesort")]
        y = values[order]
        known = pd.Series(y).ffill().to_numpy()
        if np.isnan(known).all():
            raise InputError(f"{where}: series {keys.iloc[order[0]]!r} has no known value")
        first = known[~np.isnan(known)][0]
        filled = np.where(np.isnan(known), first, known)
        padded = np.concatenate([np.full(spec.history, filled[0]), filled])
        for i, row in enumerate(order):
            history[row] = padded[i : i + spec.history]
            last[row] = filled[i - 1] if i > 0 else filled[0]
            ahead = y[i : i + spec.horizon]
            targets[row, : len(ahead)] = ahead
            position[row] = i
    complete = ~np.isnan(targets).any(axis=1)
    return Windows(history, targets, last, complete, position, series)


def holdout_by_time(win: Windows, fraction: float) -> np.ndarray:
    """Validation mask: the last ``fraction`` of every series' complete rows."""
    mask = np.zeros(len(win.complete), dtype=bool)
    for s in np.unique(win.series):
        rows = np.flatnonzero((win.series == s) & win.complete)
        rows = rows[np.argsort(win.position[rows])]
        take = min(max(1, round(len(rows) * fraction)), len(rows) - 1)
        if take:
            mask[rows[-take:]] = True
    return mask


def score_forecasts(truth: np.ndarray, forecast: np.ndarray, last: np.ndarray) -> dict[str, float]:
    """MAPE, RMSE, MAE and directional accuracy (against each window's last known value)."""
    truth = np.asarray(truth, dtype=np.float64)
    forecast = np.asarray(forecast, dtype=np.float64).reshape(truth.shape)
    return {
        "mape": M.mape(truth, forecast),
        "rmse": M.rmse(truth, forecast),
        "mae": M.mae(truth, forecast),
        "directional_accuracy": M.directional_accuracy(truth, forecast, y_last=last),
    }


__all__ = [
    "PRIMARY",
    "TimeSeriesSpec",
    "Windows",
    "holdout_by_time",
    "score_forecasts",
    "windows",
]
