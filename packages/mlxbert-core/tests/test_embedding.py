"""mlxbert_core.models.Embedding: MLX's embedding with float32 gradient sums for 16-bit
tables."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_core.models import Embedding
from mlxbert_core.models.embedding import lookup


def _table(rows=6, dim=5, dtype=mx.bfloat16, seed=0):
    rng = np.random.default_rng(seed)
    return mx.array(rng.normal(size=(rows, dim)).astype(np.float32)).astype(dtype)


# Many repeats of a few rows: the case where 16-bit sums lose precision.
IDS = mx.array(np.array([[0] * 300 + [1, 2, 3] * 50]).reshape(6, 75), dtype=mx.int32)


def _cotangent(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return mx.array(rng.normal(size=(*IDS.shape, 5)).astype(np.float32)).astype(dtype)


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16, mx.float16])
def test_forward_copies_rows(dtype):
    weight = _table(dtype=dtype)
    out = lookup(weight, IDS)
    assert out.dtype == dtype
    np.testing.assert_array_equal(
        np.array(out.astype(mx.float32)), np.array(weight[IDS].astype(mx.float32))
    )


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
def test_gradient_summed_in_float32_then_rounded_once(dtype):
    weight, cot = _table(dtype=dtype), _cotangent(dtype)
    _, (grad,) = mx.vjp(lambda w: lookup(w, IDS), [weight], [cot])
    assert grad.dtype == dtype
    expected = np.zeros((6, 5), np.float32)
    np.add.at(expected, np.array(IDS).reshape(-1), np.array(cot.astype(mx.float32)).reshape(-1, 5))
    want = mx.array(expected).astype(dtype).astype(mx.float32)
    np.testing.assert_allclose(np.array(grad.astype(mx.float32)), np.array(want), rtol=0, atol=1e-6)
    # Rows nothing looked up get exactly zero.
    assert not np.any(np.array(grad.astype(mx.float32))[4:])


def test_float32_tables_keep_mlx_lookup_and_gradient():
    weight, cot = _table(dtype=mx.float32), _cotangent(mx.float32)
    _, (ours,) = mx.vjp(lambda w: lookup(w, IDS), [weight], [cot])
    _, (mlx_own,) = mx.vjp(lambda w: w[IDS], [weight], [cot])
    np.testing.assert_array_equal(np.array(ours), np.array(mlx_own))


def test_module_is_an_mlx_embedding_and_trains_under_compile():
    emb = Embedding(6, 5)
    assert isinstance(emb, nn.Embedding)
    emb.set_dtype(mx.bfloat16)
    cot = _cotangent(mx.float32)

    def loss(params):
        emb.update(params)
        return (emb(IDS).astype(mx.float32) * cot).sum()

    step = mx.compile(mx.grad(loss))
    params = emb.trainable_parameters()
    grad = step(params)["weight"]
    emb.update(params)
    expected = np.zeros((6, 5), np.float32)
    np.add.at(expected, np.array(IDS).reshape(-1), np.array(cot).reshape(-1, 5))
    np.testing.assert_allclose(np.array(grad.astype(mx.float32)), expected, rtol=1e-2, atol=1e-2)


def test_quantizes_and_ties_like_mlx_embedding():
    emb = Embedding(64, 64)
    quantized = emb.to_quantized(group_size=32, bits=8)
    assert isinstance(quantized, nn.QuantizedEmbedding)
    x = mx.ones((2, 64))
    np.testing.assert_array_equal(np.array(emb.as_linear(x)), np.array(x @ emb.weight.T))
