"""The many-row product of mlxbert's quantized linear layer: same values and gradients as
``mx.quantized_matmul``, chosen by row count, kept across save/load, and no float copy of the
weight held between a forward and a backward pass."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import mlxbert_quant
from mlxbert_quant import MODES, QuantizedLinear, load_quantized, quantize, save_quantized
from mlxbert_quant._private import linear

#: (group size, bits) of each mode, for layers built directly.
MODE_SETTINGS = {"affine": (64, 4), "mxfp8": (32, 8), "nvfp4": (16, 4), "mxfp4": (32, 4)}


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


def test_the_layer_is_public_api():
    assert mlxbert_quant.QuantizedLinear is linear.QuantizedLinear
    assert mlxbert_quant.install_fast_products is linear.install_fast_products
    assert issubclass(QuantizedLinear, nn.QuantizedLinear)


def layer(mode: str = "affine", bias: bool = True) -> nn.QuantizedLinear:
    mx.random.seed(0)
    quantized = nn.Linear(64, 48, bias=bias).to_quantized(*MODE_SETTINGS[mode], mode=mode)
    model = nn.Sequential(quantized)
    assert mlxbert_quant.install_fast_products(model) == 1
    return model.layers[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", [True, False])
def test_fast_product_matches_the_kernel_with_and_without_bias(mode, bias, monkeypatch):
    q = layer(mode, bias)
    assert isinstance(q, nn.QuantizedLinear) and type(q) is QuantizedLinear
    x = mx.random.normal((3, 30, 64), key=mx.random.key(1))
    monkeypatch.setattr(linear, "dequantize_first", lambda x: False)
    kernel = q(x)
    monkeypatch.setattr(linear, "dequantize_first", lambda x: True)
    fast = q(x)
    np.testing.assert_allclose(np.array(fast), np.array(kernel), atol=2e-5, rtol=1e-4)


def test_from_linear_builds_the_fast_layer(monkeypatch):
    mx.random.seed(0)
    dense = nn.Linear(64, 32)
    q = QuantizedLinear.from_linear(dense, 64, 4)
    assert type(q) is QuantizedLinear and q.bits == 4 and q.group_size == 64
    x = mx.random.normal((2, 16, 64), key=mx.random.key(3))
    monkeypatch.setattr(linear, "dequantize_first", lambda x: False)
    kernel = q(x)
    monkeypatch.setattr(linear, "dequantize_first", lambda x: True)
    np.testing.assert_allclose(np.array(q(x)), np.array(kernel), atol=2e-5, rtol=1e-4)


def test_dequantized_product_keeps_no_float_weight_for_the_backward_pass():
    # Eight 4-bit layers of 1024 x 1024 (4 MiB each once dequantized to float32) and an input
    # of 16 rows: keeping each layer's float weight from the forward to the backward pass holds
    # all eight at once (about 40 MiB at the peak); dequantizing again in the backward pass
    # holds one or two, whatever the depth (about 17 MiB).
    mx.random.seed(0)
    layers = [
        QuantizedLinear.from_linear(nn.Linear(1024, 1024, bias=False), 64, 4) for _ in range(8)
    ]
    for q in layers:
        q.freeze()
    x = mx.random.normal((16, 1024))
    mx.eval(x, [q.parameters() for q in layers])

    def forward(v):
        for q in layers:
            v = q(v)
        return v.sum()

    dense_bytes = 1024 * 1024 * 4
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    grad = mx.grad(forward)(x)
    mx.eval(grad)
    assert mx.get_peak_memory() - base < 6 * dense_bytes
    assert grad.shape == x.shape and bool(mx.all(mx.isfinite(grad)))
