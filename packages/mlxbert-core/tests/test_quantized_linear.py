"""The many-row product of quantized layers loaded from a folder: the values and input
gradients of ``mx.quantized_matmul``, without its CPU cost."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_core._private import quantized_linear as ql


def layer(mode: str = "affine", bias: bool = True) -> nn.QuantizedLinear:
    mx.random.seed(0)
    settings = {"affine": (64, 4), "mxfp8": (32, 8), "nvfp4": (16, 4), "mxfp4": (32, 4)}[mode]
    quantized = nn.Linear(64, 48, bias=bias).to_quantized(*settings, mode=mode)
    model = nn.Sequential(quantized)
    assert ql.install_fast_products(model) == 1
    return model.layers[0]


@pytest.mark.parametrize("mode", ["affine", "mxfp8", "nvfp4", "mxfp4"])
@pytest.mark.parametrize("bias", [True, False])
def test_fast_product_matches_the_kernel(mode, bias, monkeypatch):
    q = layer(mode, bias)
    assert isinstance(q, nn.QuantizedLinear) and type(q) is ql.QuantizedLinear
    x = mx.random.normal((3, 30, 64), key=mx.random.key(1))
    monkeypatch.setattr(ql, "dequantize_first", lambda x: False)
    kernel = q(x)
    monkeypatch.setattr(ql, "dequantize_first", lambda x: True)
    fast = q(x)
    np.testing.assert_allclose(np.array(fast), np.array(kernel), atol=2e-5, rtol=1e-4)


def test_input_gradient_matches_the_kernel(monkeypatch):
    q = layer()
    q.freeze()
    x = mx.random.normal((4, 16, 64), key=mx.random.key(2))

    def grad():
        return mx.grad(lambda v: (q(v) ** 2).sum())(x)

    monkeypatch.setattr(ql, "dequantize_first", lambda x: False)
    kernel = grad()
    monkeypatch.setattr(ql, "dequantize_first", lambda x: True)
    fast = grad()
    np.testing.assert_allclose(np.array(fast), np.array(kernel), atol=1e-4, rtol=1e-4)


def test_rows_decide_the_path(monkeypatch):
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.cpu))
    assert ql.dequantize_first(mx.zeros((1, ql.MIN_ROWS_CPU, 8)))
    assert not ql.dequantize_first(mx.zeros((ql.MIN_ROWS_CPU - 1, 8)))
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.gpu))
    assert not ql.dequantize_first(mx.zeros((ql.MIN_ROWS_GPU - 1, 8)))
