"""Gradient norms and clipping: float64-accurate on large tensors, PyTorch's clipping rule."""

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_core.training import clip_grad_norm, global_norm
from mlxbert_core.training.clipping import BLOCK, squared_sum


def reference_norm(arrays) -> float:
    return float(np.sqrt(sum((np.asarray(a, dtype=np.float64) ** 2).sum() for a in arrays)))


@pytest.mark.parametrize("size", [1, BLOCK - 1, BLOCK, 3 * BLOCK + 5, (1 << 22) + 3])
def test_squared_sum_matches_float64(size):
    # 2^22 small values: a plain running float32 sum lands about 0.4% low on the CPU.
    values = np.random.default_rng(size).standard_normal(size).astype(np.float32) * 1e-3
    got = float(squared_sum(mx.array(values)))
    assert got == pytest.approx(float((values.astype(np.float64) ** 2).sum()), rel=1e-5)


def test_global_norm_of_a_tree_with_mixed_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    tree = {
        "embedding": mx.array(rng.standard_normal((4096, 300)).astype(np.float32) * 1e-3),
        "layers": [{"bias": mx.array(rng.standard_normal(7).astype(np.float32))}],
        "half": mx.array(rng.standard_normal((33, 65)).astype(np.float32)).astype(mx.bfloat16),
    }
    arrays = [tree["embedding"], tree["layers"][0]["bias"], tree["half"].astype(mx.float32)]
    assert float(global_norm(tree)) == pytest.approx(reference_norm(arrays), rel=1e-5)
    assert global_norm(tree).dtype == mx.float32
    assert float(global_norm({})) == 0.0


def test_clipping_scales_to_max_norm_and_keeps_dtypes():
    rng = np.random.default_rng(1)
    grads = {
        "w": mx.array(rng.standard_normal((64, 32)).astype(np.float32)),
        "b": mx.array(rng.standard_normal(32).astype(np.float32)).astype(mx.bfloat16),
    }
    norm = reference_norm([grads["w"], grads["b"].astype(mx.float32)])
    clipped, reported = clip_grad_norm(grads, max_norm=1.0)
    assert float(reported) == pytest.approx(norm, rel=1e-5)
    assert clipped["b"].dtype == mx.bfloat16 and clipped["w"].dtype == mx.float32
    # PyTorch's rule: scale by max_norm / (norm + 1e-6)
    scale = 1.0 / (norm + 1e-6)
    np.testing.assert_allclose(np.array(clipped["w"]), np.array(grads["w"]) * scale, rtol=1e-5)
    assert reference_norm([clipped["w"], clipped["b"].astype(mx.float32)]) == pytest.approx(
        1.0,
        rel=1e-2,  # bfloat16 rounding of the bias
    )


def test_gradients_under_the_limit_are_left_alone():
    grads = {"w": mx.array([0.3, -0.4])}
    clipped, norm = clip_grad_norm(grads, max_norm=1.0)
    assert float(norm) == pytest.approx(0.5)
    np.testing.assert_array_equal(np.array(clipped["w"]), np.array(grads["w"]))


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_non_positive_max_norm_is_refused(bad):
    with pytest.raises(ValueError, match="max_norm must be positive"):
        clip_grad_norm({"w": mx.ones(2)}, bad)
