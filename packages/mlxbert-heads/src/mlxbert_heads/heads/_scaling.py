"""Target standardisation stored with a head, so the network works on unit-scale targets
while predictions come back in the original units."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import to_numpy


class TargetScaler:
    """Per-column mean and standard deviation (a constant column keeps std 1)."""

    def __init__(
        self, mean: list[float] | None = None, std: list[float] | None = None, size: int = 1
    ):
        self.mean = np.zeros(size) if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = np.ones(size) if std is None else np.asarray(std, dtype=np.float64)
        if self.mean.shape != (size,) or self.std.shape != (size,):
            raise ValueError(f"target scaler needs {size} means and stds")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std))):
            raise ValueError("target scaler statistics must be finite")
        if np.any(self.std <= 0):
            raise ValueError("target scaler stds must be > 0")

    def fit(self, targets: Any) -> TargetScaler:
        values = (
            to_numpy(targets).reshape(-1, self.mean.size)
            if self.mean.size > 1
            else (to_numpy(targets).reshape(-1, 1))
        )
        if values.shape[0] == 0:
            raise ValueError("fit_scaler needs at least one target value")
        if not np.all(np.isfinite(values)):
            raise ValueError("targets contain NaN or infinite values")
        self.mean = values.mean(axis=0)
        std = values.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def state(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}
