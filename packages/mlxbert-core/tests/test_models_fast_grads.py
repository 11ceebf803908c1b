"""Gradients of the CPU fast paths (compiled GELU, softmax and SiLU, in both of their forms:
MLX's own exp/erf and the polynomial ones).

Those functions carry explicit closed-form VJPs; here they are checked against MLX's own
functions (``nn.gelu``, ``mx.softmax``, ``nn.silu``), inside a BERT layer against the generic
(non-CPU) code path, and under ``mx.compile`` against eager evaluation.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_core.models import _cpu_math, _layers
from mlxbert_core.models.bert import BertLayer

TOL = 1e-5


def _max_diff(a: mx.array, b: mx.array) -> float:
    return float(mx.max(mx.abs(a.astype(mx.float32) - b.astype(mx.float32))))


def _weighted_sum_grad(fn, x: mx.array, weights: mx.array) -> mx.array:
    """d/dx sum(fn(x) * weights): a random cotangent, not just ones."""
    return mx.grad(lambda v: mx.sum(fn(v) * weights))(x)


@pytest.fixture(autouse=True, params=sorted(_cpu_math.FORMS))
def form(request, monkeypatch):
    """Every test runs with each form of the CPU math as the default one."""
    monkeypatch.setattr(_cpu_math, "default_form", lambda: request.param)
    return request.param


@pytest.fixture
def rng():
    mx.random.seed(1234)
    return np.random.default_rng(1234)


def test_fast_paths_are_used_on_cpu():
    assert _layers.on_cpu(), "these tests exercise the CPU-only fast functions"


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_gelu_gradient_matches_exact_gelu(rng, scale):
    x = mx.array(rng.standard_normal((6, 33)) * scale, mx.float32)
    x = mx.concatenate([x, mx.array([[0.0, -10.0, 10.0, -5.6, 5.6, 1e-8] + [0.0] * 27])])
    w = mx.array(rng.standard_normal(x.shape), mx.float32)
    got = _weighted_sum_grad(_layers.gelu, x, w)
    want = _weighted_sum_grad(lambda v: nn.gelu(v), x, w)  # approx="none"
    assert _max_diff(got, want) < TOL
    assert _max_diff(_layers.gelu(x), nn.gelu(x)) < TOL


def test_gelu_gradient_keeps_input_dtype(rng):
    x = mx.array(rng.standard_normal((4, 16)), mx.bfloat16)
    grad = mx.grad(lambda v: _layers.gelu(v).astype(mx.float32).sum())(x)
    assert grad.dtype == mx.bfloat16
    want = mx.grad(lambda v: nn.gelu(v.astype(mx.float32)).sum())(x.astype(mx.float32))
    assert _max_diff(grad, want) < 1e-2  # bfloat16 rounding of the result


def test_silu_gradient_matches_mlx(rng):
    x = mx.array(rng.standard_normal((5, 40)) * 5, mx.float32)
    w = mx.array(rng.standard_normal(x.shape), mx.float32)
    got = _weighted_sum_grad(_layers.silu, x, w)
    want = _weighted_sum_grad(nn.silu, x, w)
    assert _max_diff(got, want) < TOL


def test_softmax_gradient_without_mask(rng):
    scores = mx.array(rng.standard_normal((2, 3, 7, 9)) * 3, mx.float32)
    w = mx.array(rng.standard_normal(scores.shape), mx.float32)
    got = _weighted_sum_grad(lambda s: _layers.masked_softmax(s, None), scores, w)
    want = _weighted_sum_grad(lambda s: mx.softmax(s, axis=-1), scores, w)
    assert _max_diff(got, want) < TOL


def test_masked_softmax_gradient_is_zero_on_masked_entries(rng):
    scores = mx.array(rng.standard_normal((3, 2, 5, 8)) * 3, mx.float32)
    w = mx.array(rng.standard_normal(scores.shape), mx.float32)
    keys = rng.random((3, 8)) > 0.4
    keys[:, 0] = True  # every row keeps at least one key, as key_padding_mask guarantees
    mask = mx.array(keys)[:, None, None, :]
    got = _weighted_sum_grad(lambda s: _layers.masked_softmax(s, mask), scores, w)
    want = _weighted_sum_grad(lambda s: mx.softmax(mx.where(mask, s, -mx.inf), axis=-1), scores, w)
    assert _max_diff(got, want) < TOL
    masked = np.broadcast_to(~keys[:, None, None, :], scores.shape)
    assert np.all(np.array(got)[masked] == 0.0)
    assert np.abs(np.array(got)[~masked]).max() > 0.0


def test_masked_softmax_gradient_with_a_full_attention_matrix(rng):
    # A [B, 1, S, S] mask (sliding windows) instead of key padding.
    tokens = mx.array([[True] * 6 + [False] * 2, [True] * 8])
    mask = _layers.sliding_window_mask(tokens, 8, 2)
    scores = mx.array(rng.standard_normal((2, 2, 8, 8)), mx.float32)
    w = mx.array(rng.standard_normal(scores.shape), mx.float32)
    got = _weighted_sum_grad(lambda s: _layers.masked_softmax(s, mask), scores, w)
    want = _weighted_sum_grad(lambda s: mx.softmax(mx.where(mask, s, -mx.inf), axis=-1), scores, w)
    assert _max_diff(got, want) < TOL


def test_fast_gradients_under_compile_equal_eager(rng):
    x = mx.array(rng.standard_normal((4, 10, 12)) * 2, mx.float32)
    keys = rng.random((4, 12)) > 0.3
    keys[:, 0] = True
    mask = mx.array(keys)[:, None, :]

    def loss(v, m):
        probs = _layers.masked_softmax(v, m)
        return mx.sum(probs * _layers.gelu(v) + _layers.silu(v) * probs)

    eager = mx.value_and_grad(loss)(x, mask)
    compiled = mx.compile(mx.value_and_grad(loss))(x, mask)
    assert _max_diff(eager[0], compiled[0]) < TOL
    assert _max_diff(eager[1], compiled[1]) < TOL


@pytest.fixture
def layer_and_inputs(rng, tiny_bert_args):
    layer = BertLayer(tiny_bert_args(hidden_dropout_prob=0.0))
    x = mx.array(rng.standard_normal((3, 11, 32)), mx.float32)
    tokens = mx.array(np.arange(11)[None, :] < np.array([[11], [7], [3]]))
    return layer, x, _layers.key_padding_mask(tokens), tokens


def _layer_grads(layer, x, mask, tokens):
    def loss(params, inputs):
        layer.update(params)
        out, _ = layer(inputs, mask)
        return mx.sum(mx.sin(out) * tokens[..., None])  # a non-trivial cotangent

    return mx.grad(loss, argnums=(0, 1))(layer.trainable_parameters(), x)


def test_bert_layer_gradients_equal_the_reference_path(layer_and_inputs, monkeypatch):
    layer, x, mask, tokens = layer_and_inputs
    fast_params, fast_x = _layer_grads(layer, x, mask, tokens)
    # Reference: the generic path (nn.gelu, mx.softmax), which the layers take off the CPU.
    monkeypatch.setattr(_layers, "on_cpu", lambda: False)
    monkeypatch.setattr(_layers, "GPU_ATTENTION", "explicit")
    monkeypatch.setattr(_layers, "GPU_FUSED_QKV", False)
    ref_params, ref_x = _layer_grads(layer, x, mask, tokens)
    assert _max_diff(fast_x, ref_x) < TOL
    flat_fast = dict(nn.utils.tree_flatten(fast_params))
    flat_ref = dict(nn.utils.tree_flatten(ref_params))
    assert flat_fast.keys() == flat_ref.keys()
    for name, grad in flat_fast.items():
        assert _max_diff(grad, flat_ref[name]) < TOL, name


def test_bert_layer_gradients_compiled_equal_eager(layer_and_inputs):
    layer, x, mask, tokens = layer_and_inputs
    eager = _layer_grads(layer, x, mask, tokens)
    compiled = mx.compile(lambda inputs: _layer_grads(layer, inputs, mask, tokens))(x)
    for (name, a), (_, b) in zip(
        nn.utils.tree_flatten(eager), nn.utils.tree_flatten(compiled), strict=True
    ):
        assert _max_diff(a, b) < TOL, name


def test_closed_form_vjps_are_the_ones_used(rng, monkeypatch, form):
    # Autodiff through the approximations would also give correct gradients, only slowly:
    # check that backward passes go through the explicit VJPs.
    calls = []
    for name, original in list(_cpu_math.BACKWARD.items()):

        def counted(*args, _original=original, _name=name):
            calls.append(_name)
            return _original(*args)

        monkeypatch.setitem(_cpu_math.BACKWARD, name, counted)
    x = mx.array(rng.standard_normal((2, 5, 5)), mx.float32)
    mask = mx.array(rng.random((2, 1, 5)) > 0.2)
    for fn in (_layers.gelu, _layers.silu, lambda v: _layers.masked_softmax(v, mask)):
        mx.eval(mx.grad(lambda v, fn=fn: mx.sum(fn(v)))(x))
    mx.eval(mx.grad(lambda v: mx.sum(_layers.masked_softmax(v, None) * v))(x))
    mx.eval(mx.grad(lambda v: mx.sum(_cpu_math.softmax(v, None, axis=-2) * v))(x))
    assert calls == [
        f"gelu/{form}",
        f"silu/{form}",
        f"masked_softmax-1/{form}",
        f"softmax-1/{form}",
        f"softmax-2/{form}",
    ]


@pytest.mark.parametrize("with_mask", [False, True])
def test_softmax_over_keys_axis_is_the_transposed_softmax(rng, with_mask):
    # The CPU attention normalises scores laid out [B, H, keys, queries] over axis -2.
    scores = mx.array(rng.standard_normal((2, 3, 6, 9)) * 4, mx.float32)
    w = mx.array(rng.standard_normal(scores.shape), mx.float32)
    keys = rng.random((2, 9)) > 0.4
    keys[:, 0] = True
    mask = mx.array(keys)[:, None, None, :] if with_mask else None
    t = lambda a: None if a is None else a.swapaxes(-1, -2)  # noqa: E731

    def over_keys(s):
        return t(_cpu_math.softmax(t(s), t(mask), axis=-2))

    def over_last(s):
        return _layers.masked_softmax(s, mask)

    assert _max_diff(over_keys(scores), over_last(scores)) < 1e-6
    got = _weighted_sum_grad(over_keys, scores, w)
    want = _weighted_sum_grad(over_last, scores, w)
    assert _max_diff(got, want) < TOL
