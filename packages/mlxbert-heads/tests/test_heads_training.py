"""Each head learns a small synthetic task from plain features in a few hundred steps: the
loss falls and the task metric beats chance by a clear margin."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from heads_helpers import adam_steps

from mlxbert_heads import create_head

RNG = np.random.default_rng(0)
X_TRAIN = RNG.normal(size=(256, 8)).astype(np.float32)
X_VALID = RNG.normal(size=(128, 8)).astype(np.float32)


@pytest.fixture(autouse=True)
def _seed():
    """Weight initialisation draws from mlx's global RNG: seed it so tests don't depend on order."""
    mx.random.seed(0)


def train(head, x, y, steps=150, lr=1e-2, **extra):
    xm, ym = mx.array(x), mx.array(y)
    losses = adam_steps(head, lambda m: m.loss(m(xm, **extra), ym), steps, lr)
    head.eval()
    return losses


def binary_target(x):
    return (x[:, 0] + 0.5 * x[:, 1] > 0.3).astype(np.int64)


@pytest.mark.parametrize("kwargs", [{}, {"loss": "focal", "focal_alpha": 0.5}, {"pos_weight": 2.0}])
def test_binary_head_learns(kwargs):
    head = create_head("binary", 8, hidden_dims=[16], **kwargs)
    losses = train(head, X_TRAIN, binary_target(X_TRAIN))
    assert losses[-1] < 0.5 * losses[0]
    y_valid = binary_target(X_VALID)
    outputs = head(mx.array(X_VALID))
    head.calibrate(outputs, y_valid)
    head.fit_threshold(outputs, y_valid)
    metrics = head.metrics(outputs, y_valid)
    assert metrics["roc_auc"] > 0.9 and metrics["accuracy"] > 0.8
    assert set(head.predict(outputs).tolist()) <= {0, 1}


def multiclass_target(x):
    return np.digitize(x[:, 0] - x[:, 1], [-0.7, 0.7])


@pytest.mark.parametrize("kwargs", [{"label_smoothing": 0.1}, {"loss": "focal"}])
def test_multiclass_head_learns(kwargs):
    head = create_head("multiclass", 8, num_classes=3, class_weights=[1.0, 1.0, 1.5], **kwargs)
    losses = train(head, X_TRAIN, multiclass_target(X_TRAIN))
    assert losses[-1] < 0.6 * losses[0]
    metrics = head.metrics(head(mx.array(X_VALID)), multiclass_target(X_VALID))
    assert metrics["accuracy"] > 0.8  # chance is about 0.4
    assert metrics["f1_macro"] > 0.75


def multilabel_target(x):
    return np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] < -0.8], axis=1).astype(np.int64)


def test_multilabel_head_learns_and_tunes_thresholds():
    head = create_head("multilabel", 8, num_labels=3)
    losses = train(head, X_TRAIN, multilabel_target(X_TRAIN))
    assert losses[-1] < 0.5 * losses[0]
    y_valid = multilabel_target(X_VALID)
    outputs = head(mx.array(X_VALID))
    before = head.metrics(outputs, y_valid)
    thresholds = head.fit_thresholds(outputs, y_valid)
    after = head.metrics(outputs, y_valid)
    assert thresholds != [0.5, 0.5, 0.5]
    assert after["f1_macro"] >= before["f1_macro"]
    assert after["f1_micro"] > 0.85 and after["subset_accuracy"] > 0.6


def regression_target(x):
    return np.stack([3.0 * x[:, 0] + 100.0, x[:, 1] - 2.0 * x[:, 2]], axis=1)


@pytest.mark.parametrize("kwargs", [{"loss": "huber"}, {"uncertainty": True}])
def test_regression_head_learns_in_original_units(kwargs):
    y_train = regression_target(X_TRAIN)
    head = create_head("regression", 8, num_targets=2, **kwargs).fit_scaler(y_train)
    losses = train(head, X_TRAIN, y_train, steps=200)
    if kwargs.get("uncertainty"):
        assert losses[-1] < losses[0] - 1.0  # a Gaussian NLL goes negative as σ shrinks
    else:
        assert losses[-1] < 0.1 * losses[0]
    y_valid = regression_target(X_VALID)
    outputs = head(mx.array(X_VALID))
    predictions = head.predict(outputs)
    assert predictions.shape == (128, 2)
    assert abs(predictions[:, 0].mean() - 100.0) < 1.0  # back in original units
    metrics = head.metrics(outputs, y_valid)
    assert metrics["r2"] > 0.9 and metrics["rmse"] < 0.5 * y_valid.std(axis=0).mean()
    if kwargs.get("uncertainty"):
        std = head.predict_std(outputs)
        assert std.shape == (128, 2) and np.all(std > 0)


def test_regression_uncertainty_tracks_noise_level():
    # Noise grows with |x0|: the predicted std should grow with it too.
    x = RNG.normal(size=(512, 8)).astype(np.float32)
    y = x[:, 1] + np.abs(x[:, 0]) * RNG.normal(size=512)
    head = create_head("regression", 8, uncertainty=True, hidden_dims=[16]).fit_scaler(y)
    train(head, x, y.astype(np.float32), steps=300)
    std = head.predict_std(head(mx.array(x)))
    assert np.corrcoef(np.abs(x[:, 0]), std)[0, 1] > 0.5


def ordinal_target(x):
    return np.digitize(x[:, 0] + 0.5 * x[:, 1], [-1.0, 0.0, 1.0])


def test_ordinal_head_learns():
    head = create_head("ordinal", 8, num_classes=4)
    losses = train(head, X_TRAIN, ordinal_target(X_TRAIN))
    assert losses[-1] < 0.5 * losses[0]
    outputs = head(mx.array(X_VALID))
    metrics = head.metrics(outputs, ordinal_target(X_VALID))
    assert metrics["quadratic_weighted_kappa"] > 0.85 and metrics["accuracy"] > 0.7
    thresholds = np.array(head.thresholds())
    assert np.all(np.diff(thresholds) > 0)


def make_series(n, length, horizon):
    t = np.arange(length + horizon)[None, :]
    phase = RNG.uniform(0, 2 * np.pi, (n, 1))
    level = RNG.uniform(20, 40, (n, 1))
    series = level + 0.3 * t + 3.0 * np.sin(2 * np.pi * t / 6 + phase)
    series += 0.1 * RNG.normal(size=series.shape)
    return series[:, :length].astype(np.float32), series[:, length:].astype(np.float32)


@pytest.mark.parametrize("decomposition", [None, "moving_average"])
def test_timeseries_head_forecasts(decomposition):
    history, future = make_series(256, 12, 3)
    head = create_head(
        "timeseries", 8, horizon=3, history_length=12, decomposition=decomposition, kernel_size=5
    ).fit_scaler(future, history)
    losses = train(head, X_TRAIN, future, steps=200, history=mx.array(history))
    assert losses[-1] < 0.1 * losses[0]
    h_valid, f_valid = make_series(64, 12, 3)
    outputs = head(mx.array(X_VALID[:64]), history=mx.array(h_valid))
    metrics = head.metrics(outputs, f_valid, history=h_valid)
    naive = np.mean(np.abs(f_valid - h_valid[:, -1:]) / np.abs(f_valid))
    assert metrics["mape"] < 0.5 * naive  # beats repeating the last value
    assert metrics["directional_accuracy"] > 0.7
    assert head.predict(outputs).shape == (64, 3)


def test_timeseries_decomposition_splits_trend_and_season():
    head = create_head(
        "timeseries", 4, horizon=2, history_length=24, decomposition="moving_average", kernel_size=6
    )
    t = np.arange(24.0)
    history = (5.0 + 0.5 * t + np.sin(2 * np.pi * t / 6))[None, :]
    trend, seasonal = head.decompose(history)
    np.testing.assert_allclose(trend + seasonal, history)
    # Away from the edges a full-period moving average removes the seasonality exactly; an
    # even window (t-2 .. t+3) is centred half a step late, so the linear trend reads 0.25 high.
    np.testing.assert_allclose(seasonal[0, 6:-6], np.sin(2 * np.pi * t[6:-6] / 6) - 0.25, atol=1e-9)
