"""Temperature scaling and threshold choice on validation data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.metrics import f1_score, log_loss, roc_curve

from mlxbert_heads import BinaryClassificationHead, MulticlassClassificationHead
from mlxbert_heads.calibration import choose_threshold, fit_temperature, temperature_nll


def overconfident_binary(n=2000, scale=4.0, seed=0):
    """Labels drawn from sigmoid(z) but logits reported as scale * z: overconfident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) * 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return scale * z, y


def scipy_nll_minimiser(logits, y, *, upper):
    """The temperature minimising the validation NLL on [0.05, upper], by scipy's bounded
    scalar search: the reference a fitted temperature is checked against."""
    ref = minimize_scalar(
        lambda t: temperature_nll(logits, y, t),
        bounds=(0.05, upper),
        method="bounded",
        options={"xatol": 1e-8},
    )
    return ref.x


def test_temperature_scaling_recovers_the_scale_and_lowers_nll():
    logits, y = overconfident_binary()
    head = BinaryClassificationHead(4)
    before = log_loss(y, head.predict_proba(logits))
    temperature = head.calibrate(logits, y)
    after = log_loss(y, head.predict_proba(logits))
    assert 3.0 < temperature < 5.5  # the true miscalibration factor is 4
    assert after < before - 0.1
    assert temperature == pytest.approx(scipy_nll_minimiser(logits, y, upper=50), rel=1e-4)


def test_multiclass_temperature_on_underconfident_logits():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1500, 4)) * 2
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    logits = 0.3 * z  # underconfident: T should come out near 0.3
    head = MulticlassClassificationHead(4, num_classes=4)
    before = log_loss(y, head.predict_proba(logits), labels=range(4))
    temperature = head.calibrate(logits, y)
    after = log_loss(y, head.predict_proba(logits), labels=range(4))
    assert 0.2 < temperature < 0.4
    assert after < before
    assert temperature == pytest.approx(scipy_nll_minimiser(logits, y, upper=10), rel=1e-4)


def test_temperature_is_bounded_on_separable_data():
    logits = np.array([-3.0, -1.0, 1.0, 2.0])
    # The NLL keeps falling as T -> 0: the fit sharpens until it is negligible, within bounds.
    temperature = fit_temperature(logits, [0, 0, 1, 1])
    assert 0.01 <= temperature < 0.1
    assert temperature_nll(logits, [0, 0, 1, 1], temperature) < 1e-8


def brute_force_best_f1(p, y):
    best = 0.0
    for t in np.unique(p):
        pred = p >= t
        tp = np.sum(pred & (y == 1))
        best = max(best, 2 * tp / (pred.sum() + y.sum()))
    return best


def test_f1_threshold_is_optimal_on_validation():
    rng = np.random.default_rng(2)
    for _ in range(10):
        y = rng.integers(0, 2, 80)
        p = np.round(np.clip(0.3 * y + rng.random(80) * 0.7, 0, 1), 2)
        if y.min() == y.max():
            continue
        t = choose_threshold(p, y, criterion="f1")
        achieved = f1_score(y, (p >= t).astype(int))
        assert achieved == pytest.approx(brute_force_best_f1(p, y))


def test_youden_threshold_maximises_tpr_minus_fpr():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.25 * y + rng.random(200) * 0.75, 0, 1)
    t = choose_threshold(p, y, criterion="youden")
    fpr, tpr, _ = roc_curve(y, p)
    pred = p >= t
    j = pred[y == 1].mean() - pred[y == 0].mean()
    assert j == pytest.approx(np.max(tpr - fpr))


def test_head_stores_threshold_and_uses_it():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    logits = np.where(y == 1, 1.5, -0.5) + rng.normal(size=300) - 2.0  # positives mostly < 0
    head = BinaryClassificationHead(4)
    t = head.fit_threshold(logits, y)
    assert t < 0.5 and head.threshold == t
    assert f1_score(y, head.predict(logits)) > f1_score(y, (logits > 0).astype(int))


def test_threshold_errors():
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="criterion"):
        choose_threshold([0.1, 0.2], [0, 1], criterion="gmean")
    with pytest.raises(ValueError, match="0/1"):
        fit_temperature([0.1, 0.2], [0, 2])
