"""Shared model pieces: the CPU GELU / softmax kernels, masks and input checks."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_core.models import _cpu_math, _layers


@pytest.fixture(params=sorted(_cpu_math.FORMS))
def form(request, monkeypatch):
    """The CPU math's form (MLX's exp/erf, or the polynomial ones) made the default."""
    monkeypatch.setattr(_cpu_math, "default_form", lambda: request.param)
    return request.param


def _erf64(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype(np.float64))


def test_cpu_gelu_is_the_erf_form(form):
    x = np.linspace(-12, 12, 24001, dtype=np.float32)
    exact = 0.5 * x.astype(np.float64) * (1.0 + _erf64(x / np.sqrt(2.0)))
    got = np.array(_layers.gelu(mx.array(x)))
    assert np.abs(got - exact).max() < 3e-6
    # The tanh approximation is much further away: this would catch a swap.
    assert np.abs(np.array(nn.gelu_approx(mx.array(x))) - exact).max() > 1e-4
    assert _layers.gelu(mx.array(x).astype(mx.bfloat16)).dtype == mx.bfloat16


@pytest.mark.parametrize("on_cpu", [True, False])
def test_masked_softmax_matches_float64(monkeypatch, on_cpu, form):
    monkeypatch.setattr(_layers, "on_cpu", lambda: on_cpu)
    rng = np.random.default_rng(0)
    scores = (rng.standard_normal((2, 3, 5, 7)) * 8).astype(np.float32)
    mask = rng.random((2, 1, 5, 7)) > 0.3
    mask[..., 0] = True
    ref = np.where(mask, scores.astype(np.float64), -np.inf)
    ref = np.exp(ref - ref.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    got = np.array(_layers.masked_softmax(mx.array(scores), mx.array(mask)))
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert np.all(got[~np.broadcast_to(mask, got.shape)] == 0)
    plain = np.array(_layers.masked_softmax(mx.array(scores), None))
    ref = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(plain, ref / ref.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    # A row with every key masked stays finite (uniform), in half precision too.
    for dtype in (mx.float16, mx.bfloat16):
        s = mx.full((1, 1, 1, 4), -30000.0).astype(dtype)
        out = _layers.masked_softmax(s, mx.zeros((1, 1, 1, 4), dtype=mx.bool_))
        np.testing.assert_allclose(np.array(out.astype(mx.float32)), 0.25, atol=1e-3)


def test_sliding_window_mask_keeps_padded_queries_finite():
    tokens = mx.array([[True, True, True, False, False, False, False, False]])
    mask = np.array(_layers.sliding_window_mask(tokens, 8, 1))[0, 0]
    assert mask[0].tolist() == [True, True] + [False] * 6
    assert mask[2].tolist() == [False, True, True] + [False] * 5  # key 3 is padding
    assert mask.any(axis=-1).all()  # every query row, padded ones included, sees something
    assert mask[7, 7] and not mask[7, :5].any()


def test_fully_padded_row_is_opened():
    tokens = mx.array([[True, False], [False, False]])
    mask = np.array(_layers.key_padding_mask(tokens))
    assert mask.shape == (2, 1, 1, 2)
    assert mask[0, 0, 0].tolist() == [True, False] and mask[1, 0, 0].tolist() == [True, True]


def _validate(*inputs):
    """validate_inputs for a vocabulary of 10 and 8 positions."""
    return _layers.validate_inputs(
        *inputs, vocab_size=10, max_positions=8, max_positions_name="max_length"
    )


def test_validate_inputs_accepts_lists_and_numpy():
    ids, mask, types = _validate([[2, 5, 3]], np.ones((1, 3)), None)
    assert isinstance(ids, mx.array) and isinstance(mask, mx.array) and types is None
    with pytest.raises(TypeError, match="integers"):
        _validate(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="length 0"):
        _validate(np.zeros((1, 0), dtype=np.int64))


def test_num_labels_from_config():
    assert _layers.num_labels_from_config({}) == 2
    assert _layers.num_labels_from_config({"id2label": {"0": "a"}}) == 1
    assert _layers.num_labels_from_config({"num_labels": 5, "id2label": {"0": "a"}}) == 5
    with pytest.raises(ValueError, match="activation"):
        _layers.get_activation("gelu_10")


def test_cpu_kernels_are_differentiable(form):
    rng = np.random.default_rng(1)
    scores = mx.array((rng.standard_normal((2, 3, 4, 5)) * 4).astype(np.float32))
    mask = mx.array(rng.random((2, 1, 1, 5)) > 0.2)
    weights = mx.array(rng.standard_normal(5).astype(np.float32))

    def ours(s):
        return (_layers.masked_softmax(s, mask) * weights).sum()

    def reference(s):
        probs = mx.softmax(mx.where(mask, s, -1e30), axis=-1, precise=True)
        return (probs * weights).sum()

    np.testing.assert_allclose(
        np.array(mx.grad(ours)(scores)), np.array(mx.grad(reference)(scores)), atol=1e-6
    )
    x = mx.array(np.linspace(-6, 6, 101, dtype=np.float32))
    np.testing.assert_allclose(
        np.array(mx.grad(lambda v: _layers.gelu(v).sum())(x)),
        np.array(mx.grad(lambda v: nn.gelu(v).sum())(x)),
        atol=1e-5,
    )


def test_cpu_silu_matches_reference(form):
    x = np.linspace(-100, 100, 20001, dtype=np.float32)
    ref = x.astype(np.float64) / (1.0 + np.exp(-x.astype(np.float64)))
    got = np.array(_layers.silu(mx.array(x)))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    grad = mx.grad(lambda v: _layers.silu(v).sum())(mx.array(x[::100]))
    ref_grad = mx.grad(lambda v: nn.silu(v).sum())(mx.array(x[::100]))
    np.testing.assert_allclose(np.array(grad), np.array(ref_grad), atol=1e-5)


@pytest.mark.parametrize("weight,bias", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_cpu_layer_norm_matches_float64(weight, bias, rows):
    rng = np.random.default_rng(rows)
    x = (rng.standard_normal((rows, 384)) * 3 + 1.5).astype(np.float32)
    w = rng.standard_normal(384).astype(np.float32)
    b = rng.standard_normal(384).astype(np.float32)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-12)
    want = want * (w if weight else 1) + (b if bias else 0)
    got = _cpu_math.layer_norm(
        mx.array(x), mx.array(w) if weight else None, mx.array(b) if bias else None, 1e-12
    )
    np.testing.assert_allclose(np.array(got), want, atol=2e-5, rtol=1e-5)


def test_layer_norm_module_is_nn_layer_norm(monkeypatch):
    ln = _layers.LayerNorm(16, eps=1e-5, bias=False)
    ln.weight = mx.array(np.linspace(0.5, 2, 16, dtype=np.float32))
    x = mx.array(np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32))
    reference = nn.LayerNorm.__call__(ln, x)
    calls = []
    original = _cpu_math.layer_norm
    monkeypatch.setattr(_cpu_math, "layer_norm", lambda *a: calls.append(1) or original(*a))
    ln.eval()
    np.testing.assert_allclose(np.array(ln(x)), np.array(reference), atol=1e-5)
    assert calls  # inference on a CPU: the matrix-vector form
    ln.train()
    calls.clear()
    np.testing.assert_array_equal(np.array(ln(x)), np.array(reference))
    assert not calls  # training: MLX's own layer norm and its gradient
    assert set(ln.keys()) == {"weight"}  # the parameters of nn.LayerNorm


def test_cpu_rms_norm_matches_float64_and_the_module():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 9, 64)) * 2 + 0.5).astype(np.float32)
    w = rng.standard_normal(64).astype(np.float32)
    x64 = x.astype(np.float64)
    want = x64 / np.sqrt((x64**2).mean(-1, keepdims=True) + 1e-6) * w
    got = _cpu_math.rms_norm(mx.array(x), mx.array(w), 1e-6)
    np.testing.assert_allclose(np.array(got), want, atol=2e-5, rtol=1e-5)
    norm = _layers.RMSNorm(64, eps=1e-6)
    norm.weight = mx.array(w)
    norm.eval()
    np.testing.assert_allclose(np.array(norm(mx.array(x))), want, atol=2e-5, rtol=1e-5)
    assert set(norm.keys()) == {"weight"}


def test_cpu_norms_in_eval_mode_keep_gradients():
    # attribution methods take gradients through a model in eval mode
    x = mx.array(np.random.default_rng(1).standard_normal((3, 5, 16)).astype(np.float32))
    for ours, reference in (
        (_layers.LayerNorm(16), nn.LayerNorm(16)),
        (_layers.RMSNorm(16), nn.RMSNorm(16)),
    ):
        reference.update(ours.parameters())
        ours.eval()
        got = mx.grad(lambda v, m=ours: (m(v) ** 3).sum())(x)
        want = mx.grad(lambda v, m=reference: (m(v) ** 3).sum())(x)
        np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-4)


def test_linear_with_the_bias_apart_equals_the_layer():
    layer = nn.Linear(8, 5)
    x = mx.array(np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32))
    np.testing.assert_allclose(
        np.array(_layers.linear(layer, x, split_bias=True)), np.array(layer(x)), atol=1e-6
    )
    plain = nn.Linear(8, 5, bias=False)  # nothing to split
    np.testing.assert_array_equal(
        np.array(_layers.linear(plain, x, split_bias=True)), np.array(plain(x))
    )
