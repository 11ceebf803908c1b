"""Matrix-product FFT convolution, backend choice and the inference-time filter cache."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from m2_helpers import assert_central_differences, config_dict
from mlx.utils import tree_flatten, tree_unflatten

import mlxbert_m2.mixer as mixer_module
from mlxbert_m2 import build_model, fft_long_conv
from mlxbert_m2._fftconv import monarch_fft_conv, monarch_kernel_spectrum, monarch_plan
from mlxbert_m2.mixer import (
    HyenaFilter,
    clear_filter_cache,
    set_filter_caching,
    set_long_conv_backend,
)

LENGTH = 32


def _conv_inputs(length: int, channels: int = 5, batch: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    u = mx.array(rng.standard_normal((batch, length, channels)), mx.float32)
    # A decaying kernel like the implicit filters', plus noise.
    decay = np.exp(-np.linspace(0, 4, 2 * length))[:, None]
    k = mx.array(decay * rng.standard_normal((2 * length, channels)), mx.float32)
    return u, k


def _relative_error(actual: mx.array, expected: mx.array) -> float:
    a, e = np.array(actual.astype(mx.float32)), np.array(expected.astype(mx.float32))
    return float(np.linalg.norm(a - e) / np.linalg.norm(e))


@pytest.mark.parametrize("length", [1, 3, 8, 11, 12, 64, 96, 160])
def test_matmul_conv_equals_rfft_in_float32(length):
    u, k = _conv_inputs(length)
    plan = monarch_plan(length)
    assert plan is not None and plan.n1 * plan.n2 == 2 * length and length % plan.n2 == 0
    y = monarch_fft_conv(u, monarch_kernel_spectrum(k, plan), plan)
    expected = fft_long_conv(u, k)
    assert y.dtype == mx.float32 and y.shape == expected.shape
    scale = float(mx.abs(expected).max())
    np.testing.assert_allclose(np.array(y), np.array(expected), atol=2e-6 * scale, rtol=0)


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
def test_matmul_conv_half_precision_is_close(dtype):
    u, k = _conv_inputs(256, channels=16)
    plan = monarch_plan(256)
    y = monarch_fft_conv(u.astype(dtype), monarch_kernel_spectrum(k, plan), plan)
    assert y.dtype == dtype
    expected = fft_long_conv(u, k)
    tol = 2e-2 if dtype == mx.bfloat16 else 3e-3
    assert _relative_error(y, expected) < tol


def test_plan_choice_and_fallback():
    assert monarch_plan(4096) == mixer_module.MonarchPlan(4096, 128, 64)
    assert monarch_plan(8192) == mixer_module.MonarchPlan(8192, 256, 64)
    for length in (2, 48, 100, 512, 2048, 32768):
        plan = monarch_plan(length)
        assert plan.n1 * plan.n2 == 2 * length and plan.n1 % 2 == 0
    assert monarch_plan(1031) is None  # a prime beyond the dense-DFT limit: rfft path
    with pytest.raises(ValueError, match="positive"):
        monarch_plan(0)


def test_matmul_conv_rejects_mismatched_shapes():
    u, k = _conv_inputs(16)
    plan = monarch_plan(16)
    spectrum = monarch_kernel_spectrum(k, plan)
    with pytest.raises(ValueError, match="length"):
        monarch_fft_conv(u[:, :8], spectrum, plan)
    with pytest.raises(ValueError, match="spectrum shape"):
        monarch_fft_conv(u[..., :3], spectrum, plan)
    with pytest.raises(ValueError, match="kernel length"):
        monarch_kernel_spectrum(k[:8], plan)


def test_matmul_conv_gradients_match_finite_differences():
    """Bilinear in (u, kernel): central differences of the rfft path are exact up to rounding."""
    length, channels = 12, 2
    u, k = _conv_inputs(length, channels, batch=1, seed=3)
    w = mx.array(np.random.default_rng(4).standard_normal((1, length, channels)), mx.float32)
    plan = monarch_plan(length)

    def loss(u_, k_):
        return (monarch_fft_conv(u_, monarch_kernel_spectrum(k_, plan), plan) * w).sum()

    gu, gk = mx.grad(loss, argnums=(0, 1))(u, k)
    u64, k64, w64 = (np.array(a, dtype=np.float64) for a in (u, k, w))

    def loss64(u_, k_):  # float64 circular convolution by numpy's FFT
        n = 2 * length
        y = np.fft.irfft(np.fft.rfft(u_, n=n, axis=1) * np.fft.rfft(k_, n=n, axis=0), n=n, axis=1)
        return float((y[:, :length] * w64).sum())

    probes = [(0, (0, 5, 1)), (1, (3, 0)), (1, (20, 1))]
    assert_central_differences(loss64, (u64, k64), (gu, gk), probes)


# ---------------------------------------------------------------------------------------------
# Through the model
# ---------------------------------------------------------------------------------------------


def _model(**overrides):
    mx.random.seed(0)
    model = build_model(config_dict("glue_tiny", num_hidden_layers=1, **overrides), "encoder")
    model.eval()
    return model


def _ids(length: int = LENGTH, seed: int = 0) -> mx.array:
    return mx.array(np.random.default_rng(seed).integers(200, 500, size=(2, length)))


def _mixer(model):
    return model.encoder.layer[0].attention


def _count_calls(monkeypatch, owner, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.mark.parametrize("overrides", [{}, {"residual_long_conv": False, "bidirectional": False}])
def test_model_matmul_backend_matches_rfft_in_float32(overrides):
    model, ids = _model(**overrides), _ids()
    set_long_conv_backend(model, "rfft")
    expected = model(ids).last_hidden_state
    set_long_conv_backend(model, "matmul")
    actual = model(ids).last_hidden_state
    np.testing.assert_allclose(np.array(actual), np.array(expected), atol=2e-5, rtol=0)


def test_bfloat16_auto_uses_matmul_fft_and_stays_close(monkeypatch):
    model, ids = _model(), _ids()
    reference = model(ids).last_hidden_state  # float32: rfft path
    model.set_dtype(mx.bfloat16)
    calls = _count_calls(monkeypatch, mixer_module, "monarch_fft_conv")
    out = model(ids).last_hidden_state
    assert out.dtype == mx.bfloat16 and calls[0] == 1
    set_long_conv_backend(model, "rfft")  # float32 FFT inside a bfloat16 model
    out_rfft = model(ids).last_hidden_state
    assert calls[0] == 1
    # Both carry the bfloat16 rounding of every weight and activation (about 10% here: random
    # weights, a product of three gated branches); the matmul FFT must add little to it.
    err_matmul, err_rfft = _relative_error(out, reference), _relative_error(out_rfft, reference)
    assert err_rfft < 0.2
    assert err_matmul < 1.25 * err_rfft + 5e-3, (err_matmul, err_rfft)


def test_backend_errors():
    model = _model()
    with pytest.raises(ValueError, match="backend must be one of"):
        set_long_conv_backend(model, "cufft")
    with pytest.raises(ValueError, match="no MonarchMixerSequenceMixing"):
        clear_filter_cache(nn.Linear(2, 2))
    _mixer(model).long_conv_backend = "bogus"
    with pytest.raises(ValueError, match="long_conv_backend"):
        model(_ids())


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_filter_cache_reuses_spectra_and_gives_identical_outputs(monkeypatch, dtype):
    model, ids = _model(), _ids()
    model.set_dtype(dtype)
    set_filter_caching(model, False)
    uncached = model(ids).last_hidden_state
    assert not _mixer(model)._spectra.entries
    set_filter_caching(model, True)
    calls = _count_calls(monkeypatch, HyenaFilter, "conv_kernel")
    first = model(ids).last_hidden_state
    assert calls[0] == 2  # filter_fn and filter_fn2, once
    second = model(ids).last_hidden_state
    assert calls[0] == 2  # served from the cache
    np.testing.assert_array_equal(
        np.array(first.astype(mx.float32)), np.array(uncached.astype(mx.float32))
    )
    np.testing.assert_array_equal(
        np.array(second.astype(mx.float32)), np.array(first.astype(mx.float32))
    )
    model(_ids(LENGTH // 2))  # another length: its own entry
    assert calls[0] == 4 and len(_mixer(model)._spectra.entries) == 2
    clear_filter_cache(model)
    assert not _mixer(model)._spectra.entries


def _perturbed_filters(model, scale: float = 0.5):
    rng = np.random.default_rng(7)
    flat = tree_flatten(model.trainable_parameters())
    return tree_unflatten(
        [
            (k, v + scale * mx.array(rng.standard_normal(v.shape), v.dtype))
            for k, v in flat
            if "filter_fn" in k and "implicit_filter" in k
        ]
    )


def test_filter_cache_is_invalidated_by_parameter_updates():
    model, ids = _model(), _ids()
    before = model(ids).last_hidden_state
    model.update(_perturbed_filters(model))
    after = model(ids).last_hidden_state
    set_filter_caching(model, False)
    fresh = model(ids).last_hidden_state
    assert not np.allclose(np.array(after), np.array(before), atol=1e-3)
    np.testing.assert_array_equal(np.array(after), np.array(fresh))


def test_no_caching_in_training_and_gradients_reach_filters():
    model, ids = _model(), _ids()
    model(ids)  # fills the cache in eval mode
    assert _mixer(model)._spectra.entries
    model.train()
    assert not _mixer(model)._spectra.entries

    def loss_fn(m):
        return (m(ids).last_hidden_state ** 2).mean()

    _, grads = nn.value_and_grad(model, loss_fn)(model)
    assert not _mixer(model)._spectra.entries
    flat = dict(tree_flatten(grads))
    filter_grads = [v for k, v in flat.items() if "implicit_filter" in k or "pos_emb.z" in k]
    assert filter_grads and all(float(mx.abs(g).max()) > 0 for g in filter_grads)


def test_eval_mode_gradients_equal_uncached_gradients():
    """nn.value_and_grad swaps in traced parameters: the cache must not freeze the filters."""
    model, ids = _model(), _ids()
    model(ids)  # cache filled with the concrete parameters

    w = mx.array(np.random.default_rng(5).standard_normal((2, LENGTH, 64)), mx.float32)

    def loss_fn(m):
        return (m(ids).last_hidden_state * w).sum()

    params = model.trainable_parameters()
    _, cached = nn.value_and_grad(model, loss_fn)(model)
    model.update(params)
    set_filter_caching(model, False)
    _, uncached = nn.value_and_grad(model, loss_fn)(model)
    for (k, a), (_, b) in zip(tree_flatten(cached), tree_flatten(uncached), strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6, rtol=1e-5, err_msg=k)
    z_grad = dict(tree_flatten(cached))["encoder.layer.0.attention.filter_fn.pos_emb.z"]
    assert float(mx.abs(z_grad).max()) > 1e-3


def test_compiled_forward_uses_cache_and_matches_eager(monkeypatch):
    model, ids = _model(), _ids()
    eager = model(ids).last_hidden_state
    clear_filter_cache(model)
    calls = _count_calls(monkeypatch, HyenaFilter, "conv_kernel")
    compiled = mx.compile(lambda x: model(x).last_hidden_state)
    first = compiled(ids)
    second = compiled(_ids(seed=1))
    assert calls[0] == 2 and _mixer(model)._spectra.entries  # filled while tracing
    np.testing.assert_allclose(np.array(first), np.array(eager), atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        np.array(second), np.array(model(_ids(seed=1)).last_hidden_state), atol=1e-5, rtol=0
    )


def test_compile_with_state_as_input_does_not_cache_tracers():
    model, ids = _model(), _ids()
    eager = model(ids).last_hidden_state
    clear_filter_cache(model)
    state = model.state
    compiled = mx.compile(lambda x: model(x).last_hidden_state, inputs=state, outputs=state)
    out = compiled(ids)
    assert not _mixer(model)._spectra.entries  # the parameters were traced inputs
    np.testing.assert_allclose(np.array(out), np.array(eager), atol=1e-5, rtol=0)
    # A later eager call still works (nothing traced was stored).
    np.testing.assert_allclose(np.array(model(ids).last_hidden_state), np.array(eager), atol=0)


def test_set_dtype_invalidates_cache():
    """Same cache key (rfft path, same length) but new parameter arrays: recomputed."""
    model, ids = _model(), _ids()
    set_long_conv_backend(model, "rfft")
    model(ids)
    ((params, _),) = _mixer(model)._spectra.entries.values()
    model.set_dtype(mx.bfloat16)
    out = model(ids).last_hidden_state
    ((new_params, _),) = _mixer(model)._spectra.entries.values()
    assert out.dtype == mx.bfloat16 and new_params[0] is not params[0]
    set_filter_caching(model, False)
    np.testing.assert_array_equal(
        np.array(out.astype(mx.float32)), np.array(model(ids).last_hidden_state.astype(mx.float32))
    )


def test_training_gradients_equal_between_backends():
    """Gradients reach every filter parameter through the matrix-product FFT as through rfft."""
    model, ids = _model(), _ids()
    model.train()
    for layer in model.encoder.layer:  # dropout off, training mode on (no cache)
        layer.mlp.eval()
    model.embeddings.dropout.eval()

    w = mx.array(np.random.default_rng(5).standard_normal((2, LENGTH, 64)), mx.float32)

    def loss_fn(m):  # a random projection: (a squared LayerNorm output has ~zero gradient)
        return (m(ids).last_hidden_state * w).sum()

    params = model.trainable_parameters()
    grads = {}
    for backend in ("rfft", "matmul"):
        model.update(params)
        set_long_conv_backend(model, backend)
        _, g = nn.value_and_grad(model, loss_fn)(model)
        grads[backend] = dict(tree_flatten(g))
    assert not _mixer(model)._spectra.entries
    for k, a in grads["rfft"].items():
        scale = float(mx.abs(a).max()) + 1e-12
        np.testing.assert_allclose(
            np.array(grads["matmul"][k]), np.array(a), atol=1e-4 * scale, rtol=0, err_msg=k
        )
    assert float(mx.abs(grads["matmul"]["encoder.layer.0.attention.filter_fn.pos_emb.z"]).max()) > 0
