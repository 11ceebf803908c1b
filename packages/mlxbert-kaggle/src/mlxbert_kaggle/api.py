"""The Python API over pandas DataFrames (what the CLI does, for notebooks).

>>> import pandas as pd
>>> from mlxbert_kaggle import cross_validate, TablePredictor
>>> run = cross_validate(train_df, target="Survived", output="runs/titanic", folds=5,
...                      id_col="PassengerId", epochs=3)
>>> run.metrics["cv"]["accuracy"]
>>> run.predict(test_df)            # DataFrame: one column per target, fold ensemble
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import read_json
from .cv import train_table
from .ensemble import check_weights, combine
from .predicting import LoadedModel, load_group, predict_frame, resolve_model_groups
from .progress import Reporter, get_reporter
from .training import FitConfig

_CONFIG_FIELDS = set(FitConfig.__dataclass_fields__)


class TablePredictor:
    """Trained model folder(s) used together: ``predict`` a DataFrame, ``predict_raw`` for
    the combined probabilities / values. ``metrics`` is the run's ``metrics.json`` (if any)."""

    def __init__(
        self,
        models: Sequence[str | Path],
        *,
        ensemble: str = "mean",
        weights: Sequence[float] | None = None,
        each_fold: bool = False,
    ):
        self.groups = resolve_model_groups(models, each_fold=each_fold)
        self.paths = [p for group in self.groups for p in group]
        self.ensemble = ensemble
        self.weights = weights
        check_weights(weights, len(self.groups))
        self._models: list[list[LoadedModel]] | None = None
        self.metrics: dict[str, Any] | None = None
        for m in models:
            data = read_json(Path(m) / "metrics.json")
            if data is not None:
                self.metrics = data
                break

    @classmethod
    def load(cls, *models: str | Path, **kwargs: Any) -> TablePredictor:
        return cls(models, **kwargs)

    @property
    def model_groups(self) -> list[list[LoadedModel]]:
        """The loaded models, one group per model path (a CV run's folds together)."""
        if self._models is None:
            self._models = [load_group(group) for group in self.groups]
        return self._models

    @property
    def models(self) -> list[LoadedModel]:
        return [m for group in self.model_groups for m in group]

    @property
    def target(self):
        return self.models[0].spec

    def predict(
        self,
        frame: pd.DataFrame,
        *,
        text: str | None = None,
        progress: bool | Reporter = False,
        long_text: str | None = None,
        tta: bool = False,
    ) -> pd.DataFrame:
        """Predictions in the training table's format (one column per target).
        ``long_text``: ``head``, ``head-tail`` or ``windows`` for texts longer than the
        models' maximum length; ``tta`` averages that with the plain prediction."""
        decoded, _ = predict_frame(
            self.model_groups,
            frame,
            ensemble=self.ensemble,
            weights=self.weights,
            text=text,
            reporter=get_reporter(progress),
            long_text=long_text,
            tta=tta,
        )
        return decoded

    def predict_raw(
        self,
        frame: pd.DataFrame,
        *,
        text: str | None = None,
        long_text: str | None = None,
        tta: bool = False,
    ) -> np.ndarray:
        """Combined raw predictions: P(positive), class/label probabilities or values on the
        training scale (before any inverse target transform)."""
        _, raw = predict_frame(
            self.model_groups,
            frame,
            ensemble=self.ensemble,
            weights=self.weights,
            text=text,
            long_text=long_text,
            tta=tta,
        )
        return raw

    def __repr__(self) -> str:
        return f"TablePredictor({[str(p) for p in self.paths]}, ensemble={self.ensemble!r})"


def _split_kwargs(kwargs: dict[str, Any]) -> tuple[FitConfig, dict[str, Any]]:
    config_values = {k: kwargs.pop(k) for k in list(kwargs) if k in _CONFIG_FIELDS}
    return FitConfig(**config_values), kwargs


def fit(
    train: pd.DataFrame | str | Path,
    *,
    target: str | Sequence[str],
    output: str | Path,
    valid: pd.DataFrame | str | Path | None = None,
    progress: bool | Reporter = False,
    **kwargs: Any,
) -> TablePredictor:
    """Train one model with hold-out validation (``valid`` or ``valid_fraction``).

    Keyword arguments: those of :func:`mlxbert_kaggle.cv.train_table` (``text``,
    ``features``, ``template``, ``task``, ``label_sep``, ``id_col``, …) and of
    :class:`FitConfig` (``model``, ``epochs``, ``lr``, ``lora``, ``quantize``, ``seed``, …).
    """
    config, rest = _split_kwargs(dict(kwargs))
    train_table(
        train,
        target=target,
        output=output,
        valid=valid,
        config=config,
        reporter=get_reporter(progress),
        **rest,
    )
    return TablePredictor([output])


def cross_validate(
    train: pd.DataFrame | str | Path,
    *,
    target: str | Sequence[str],
    output: str | Path,
    folds: int = 5,
    progress: bool | Reporter = False,
    **kwargs: Any,
) -> TablePredictor:
    """K-fold cross-validation (stratified; ``group_col`` for grouped folds); the returned
    predictor ensembles the fold models and carries ``metrics`` (CV and per-fold scores)."""
    config, rest = _split_kwargs(dict(kwargs))
    train_table(
        train,
        target=target,
        output=output,
        folds=folds,
        config=config,
        reporter=get_reporter(progress),
        **rest,
    )
    return TablePredictor([output])


def ensemble(
    predictions: Sequence[np.ndarray],
    *,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    task: str | None = None,
) -> np.ndarray:
    """Combine raw predictions of several models (``mean`` or ``rank``, optional weights)."""
    combined, _ = combine(predictions, method=method, weights=weights, task=task)
    return combined


__all__ = ["TablePredictor", "cross_validate", "ensemble", "fit"]
