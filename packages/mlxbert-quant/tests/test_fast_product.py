"""The many-row product of the installed quantized layers: same values and gradients as
``mx.quantized_matmul``, chosen by row count, kept across save/load."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_quant import MODES, load_quantized, quantize, save_quantized
from mlxbert_quant._private import linear


def quantized_layers(model):
    return [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]


def count_quantized_matmul(monkeypatch) -> list:
    calls = []
    original = mx.quantized_matmul

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(mx, "quantized_matmul", counted)
    return calls


def test_quantize_installs_the_fast_layer(make_model):
    model = quantize(make_model(), bits=4, group_size=64)
    layers = quantized_layers(model)
    assert len(layers) == 4
    assert all(type(m) is linear.QuantizedLinear for m in layers)


def test_row_threshold_per_device(monkeypatch):
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.cpu))
    assert linear.dequantize_first(mx.zeros((2, linear.MIN_ROWS_CPU // 2, 16)))
    assert not linear.dequantize_first(mx.zeros((linear.MIN_ROWS_CPU - 1, 16)))
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.gpu))
    assert linear.dequantize_first(mx.zeros((linear.MIN_ROWS_GPU, 16)))
    assert not linear.dequantize_first(mx.zeros((linear.MIN_ROWS_GPU - 1, 16)))


@pytest.mark.parametrize("mode", MODES)
def test_dequantized_product_matches_the_quantized_kernel(make_model, mode, monkeypatch):
    # Rows in the hundreds: the fast path on the CPU; the same model forced onto the kernel.
    model = quantize(make_model(), mode=mode, protect_sensitive=False)
    x = mx.random.normal((4, 50, 64), key=mx.random.key(1))
    calls = count_quantized_matmul(monkeypatch)

    monkeypatch.setattr(linear, "dequantize_first", lambda x: False)
    kernel = model.layers[0](x)
    mx.eval(kernel)
    assert calls
    calls.clear()
    monkeypatch.setattr(linear, "dequantize_first", lambda x: True)
    fast = model.layers[0](x)
    mx.eval(fast)
    assert not calls
    np.testing.assert_allclose(np.array(fast), np.array(kernel), atol=2e-5, rtol=1e-4)


def test_few_rows_keep_the_quantized_kernel(make_model, ids, monkeypatch):
    model = quantize(make_model(), bits=8)
    calls = count_quantized_matmul(monkeypatch)
    with mx.stream(mx.cpu):
        mx.eval(model(ids[:1, :1]))  # one row per product
    assert calls


def test_gradient_through_a_frozen_quantized_layer(make_model, monkeypatch):
    # A quantized model used as the frozen base of an adapter: the gradient reaching the input
    # is the same on both paths, and the packed weights get none.
    model = quantize(make_model(), bits=4)
    model.freeze()
    x = mx.random.normal((3, 20, 64), key=mx.random.key(2))

    def input_grad():
        return mx.grad(lambda v: model.layers[0](v).sum())(x)

    monkeypatch.setattr(linear, "dequantize_first", lambda x: False)
    kernel = input_grad()
    monkeypatch.setattr(linear, "dequantize_first", lambda x: True)
    fast = input_grad()
    np.testing.assert_allclose(np.array(fast), np.array(kernel), atol=1e-4, rtol=1e-4)

    model.layers[0].dense_in.unfreeze(keys=["scales"])
    # Trainable quantization parameters fall back to MLX's own product.
    calls = count_quantized_matmul(monkeypatch)
    model.layers[0](x)
    assert calls


def test_loaded_models_get_the_fast_layer(make_model, ids, tmp_path):
    model = quantize(make_model(), bits=4)
    save_quantized(model, tmp_path, config={"model_type": "tiny"})
    loaded = load_quantized(make_model(seed=1), tmp_path)
    assert all(type(m) is linear.QuantizedLinear for m in quantized_layers(loaded))
    np.testing.assert_array_equal(np.array(loaded(ids)), np.array(model(ids)))
