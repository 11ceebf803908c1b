"""Losses against float64 numpy references: values, gradients (central finite differences
of the reference), special cases (focal gamma=0 = CE/BCE, smoothing 0 = CE) and bad input."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_heads import losses as L

RNG = np.random.default_rng(0)


def softplus(x):
    return np.logaddexp(0.0, x)


def bce_ref(x, y, pos_weight=1.0):
    return np.mean(pos_weight * y * softplus(-x) + (1 - y) * softplus(x))


def focal_ref(x, y, gamma, alpha=None):
    p = 1 / (1 + np.exp(-x))
    pt = p * y + (1 - p) * (1 - y)
    ce = y * softplus(-x) + (1 - y) * softplus(x)
    a = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return np.mean(a * (1 - pt) ** gamma * ce)


def ce_ref(z, y, weights=None, smoothing=0.0):
    """PyTorch's CrossEntropyLoss(weight, label_smoothing) written out in float64."""
    n, k = z.shape
    logp = (
        z
        - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
        - z.max(1, keepdims=True)
    )
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    nll = -logp[np.arange(n), y] * w[y]
    smooth = -(logp * w).sum(1) / k
    return ((1 - smoothing) * nll + smoothing * smooth).sum() / w[y].sum()


def mc_focal_ref(z, y, gamma, weights=None):
    n, k = z.shape
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    w = np.ones(k) if weights is None else np.asarray(weights)
    lp = logp[np.arange(n), y]
    return (-(w[y]) * (1 - np.exp(lp)) ** gamma * lp).sum() / w[y].sum()


def huber_ref(p, t, delta):
    e = np.abs(p - t)
    return np.mean(np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta)))


def gauss_ref(m, lv, t):
    return np.mean(0.5 * (lv + (t - m) ** 2 / np.exp(lv)))


def numeric_grad(fn, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (fn(up) - fn(down)) / (2 * eps)
    return grad


def check_value_and_grad(mlx_fn, ref_fn, x, rtol=2e-4, atol=1e-6):
    """The mlx loss (float32) matches the float64 reference in value and in gradient, the
    latter from central differences of the reference (well conditioned, no float32 noise)."""
    value, grad = mx.value_and_grad(mlx_fn)(mx.array(x.astype(np.float32)))
    np.testing.assert_allclose(value.item(), ref_fn(x), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.array(grad), numeric_grad(ref_fn, x), rtol=1e-3, atol=1e-5)


def test_bce_value_and_gradient():
    x = RNG.normal(size=12) * 2
    y = RNG.integers(0, 2, 12).astype(np.float64)
    ym = mx.array(y.astype(np.float32))
    check_value_and_grad(lambda v: L.binary_cross_entropy(v, ym), lambda v: bce_ref(v, y), x)
    check_value_and_grad(
        lambda v: L.binary_cross_entropy(v, ym, pos_weight=3.0), lambda v: bce_ref(v, y, 3.0), x
    )


def test_bce_class_weights_is_a_weighted_mean():
    x = RNG.normal(size=10)
    y = RNG.integers(0, 2, 10).astype(np.float64)
    w = np.where(y == 1, 4.0, 0.5)
    per = y * softplus(-x) + (1 - y) * softplus(x)
    got = L.binary_cross_entropy(mx.array(x), mx.array(y), class_weights=(0.5, 4.0)).item()
    np.testing.assert_allclose(got, (w * per).sum() / w.sum(), rtol=1e-5)


def test_focal_value_gradient_and_gamma_zero_equals_bce():
    x = RNG.normal(size=12) * 2
    y = RNG.integers(0, 2, 12).astype(np.float64)
    ym = mx.array(y.astype(np.float32))
    check_value_and_grad(
        lambda v: L.binary_focal_loss(v, ym, gamma=2.0, alpha=0.25),
        lambda v: focal_ref(v, y, 2.0, 0.25),
        x,
    )
    xm = mx.array(x.astype(np.float32))
    focal0 = L.binary_focal_loss(xm, ym, gamma=0.0).item()
    assert focal0 == pytest.approx(L.binary_cross_entropy(xm, ym).item(), rel=1e-6)
    # Focusing down-weights easy examples: the focal loss is below BCE.
    assert L.binary_focal_loss(xm, ym, gamma=2.0).item() < focal0


def test_cross_entropy_value_gradient_weights_and_smoothing():
    z = RNG.normal(size=(6, 4))
    y = RNG.integers(0, 4, 6)
    ym = mx.array(y)
    weights = [1.0, 2.0, 0.5, 3.0]
    for kwargs in (
        {},
        {"class_weights": weights},
        {"label_smoothing": 0.1},
        {"class_weights": weights, "label_smoothing": 0.2},
    ):
        check_value_and_grad(
            lambda v, kw=kwargs: L.cross_entropy(v, ym, **kw),
            lambda v, kw=kwargs: ce_ref(
                v, y, kw.get("class_weights"), kw.get("label_smoothing", 0.0)
            ),
            z,
        )
    zm = mx.array(z.astype(np.float32))
    plain = L.cross_entropy(zm, ym).item()
    assert L.cross_entropy(zm, ym, label_smoothing=0.0).item() == plain
    # Soft targets: one-hot rows give the same value as indices.
    one_hot = mx.array(np.eye(4)[y].astype(np.float32))
    assert L.cross_entropy(zm, one_hot).item() == pytest.approx(plain, rel=1e-6)


def test_multiclass_focal_value_gradient_and_gamma_zero_equals_ce():
    z = RNG.normal(size=(6, 3))
    y = RNG.integers(0, 3, 6)
    ym = mx.array(y)
    check_value_and_grad(
        lambda v: L.multiclass_focal_loss(v, ym, gamma=2.0, class_weights=[1.0, 2.0, 0.5]),
        lambda v: mc_focal_ref(v, y, 2.0, [1.0, 2.0, 0.5]),
        z,
    )
    zm = mx.array(z.astype(np.float32))
    for weights in (None, [1.0, 2.0, 0.5]):
        focal0 = L.multiclass_focal_loss(zm, ym, gamma=0.0, class_weights=weights).item()
        assert focal0 == pytest.approx(
            L.cross_entropy(zm, ym, class_weights=weights).item(), rel=1e-6
        )


def test_regression_losses_value_and_gradient():
    p = RNG.normal(size=10) * 2
    t = RNG.normal(size=10)
    tm = mx.array(t.astype(np.float32))
    check_value_and_grad(lambda v: L.mse_loss(v, tm), lambda v: np.mean((v - t) ** 2), p)
    check_value_and_grad(lambda v: L.mae_loss(v, tm), lambda v: np.mean(np.abs(v - t)), p)
    check_value_and_grad(
        lambda v: L.huber_loss(v, tm, delta=0.7), lambda v: huber_ref(v, t, 0.7), p
    )
    lv = RNG.normal(size=10) * 0.5
    lvm = mx.array(lv.astype(np.float32))
    pm = mx.array(p.astype(np.float32))
    check_value_and_grad(
        lambda v: L.gaussian_nll_loss(v, lvm, tm), lambda v: gauss_ref(v, lv, t), p
    )
    check_value_and_grad(lambda v: L.gaussian_nll_loss(pm, v, tm), lambda v: gauss_ref(p, v, t), lv)


def test_reductions():
    x = mx.array([0.5, -1.0, 2.0])
    y = mx.array([1.0, 0.0, 1.0])
    none = L.binary_cross_entropy(x, y, reduction="none")
    assert none.shape == (3,)
    assert L.binary_cross_entropy(x, y, reduction="sum").item() == pytest.approx(none.sum().item())
    assert L.binary_cross_entropy(x, y).item() == pytest.approx(none.mean().item())


@pytest.mark.parametrize(
    "call",
    [
        lambda: L.binary_cross_entropy(mx.zeros(3), mx.zeros(3), reduction="avg"),
        lambda: L.mse_loss(mx.zeros(3), mx.zeros(3), reduction="total"),
        lambda: L.binary_cross_entropy(mx.zeros(3), mx.zeros((3, 1))),
        lambda: L.cross_entropy(mx.zeros((3, 2)), mx.zeros((4,), dtype=mx.int32)),
        lambda: L.cross_entropy(
            mx.zeros((3, 2)), mx.zeros((3,), dtype=mx.int32), label_smoothing=1.5
        ),
        lambda: L.cross_entropy(
            mx.zeros((3, 2)), mx.zeros((3,), dtype=mx.int32), class_weights=[1.0]
        ),
        lambda: L.binary_focal_loss(mx.zeros(3), mx.zeros(3), gamma=-1.0),
        lambda: L.huber_loss(mx.zeros(3), mx.zeros(3), delta=0.0),
        lambda: L.gaussian_nll_loss(mx.zeros(3), mx.zeros(2), mx.zeros(3)),
    ],
)
def test_bad_loss_arguments_raise_clear_errors(call):
    with pytest.raises(ValueError):
        call()
