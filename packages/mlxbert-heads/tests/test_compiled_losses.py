"""Every head's loss must work inside ``mx.compile`` (training engines compile their step),
while the same loss called eagerly still rejects bad targets."""

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_heads import create_head

CASES = [
    ("binary", {}, mx.array([0.0, 1.0, 1.0]), mx.array([0.0, 2.0, 1.0])),
    ("multiclass", {"num_classes": 3}, mx.array([0, 2, 1]), mx.array([0, 3, 1])),
    ("multilabel", {"num_labels": 2}, mx.array([[0, 1], [1, 1], [0, 0]]), None),
    ("ordinal", {"num_classes": 4}, mx.array([0, 3, 2]), mx.array([0, 4, 2])),
    ("regression", {}, mx.array([0.5, -1.0, 2.0]), mx.array([0.5, np.nan, 2.0])),
]


@pytest.mark.parametrize("task, kwargs, good, bad", CASES, ids=[c[0] for c in CASES])
def test_loss_compiles_and_eager_still_validates(task, kwargs, good, bad):
    head = create_head(task, hidden_size=4, **kwargs)
    features = mx.random.normal((3, 4), key=mx.random.key(0))

    def loss_fn(x, y):
        return head.loss(head(x), y)

    eager = loss_fn(features, good)
    compiled = mx.compile(loss_fn)(features, good)
    assert np.allclose(np.array(compiled), np.array(eager), atol=1e-6)
    if bad is not None:
        with pytest.raises(ValueError):
            loss_fn(features, bad)
