"""Cumulative-link ordinal head: valid probabilities for any parameters, one definition for
loss and predictions."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlxbert_heads import OrdinalRegressionHead

finite = st.floats(-60, 60, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    st.integers(2, 7).flatmap(
        lambda k: st.tuples(
            st.just(k),
            arrays(np.float32, (1,), elements=finite),
            arrays(np.float32, (k - 2,), elements=finite),
            arrays(np.float32, (5, 3), elements=finite),
            arrays(np.float32, (1, 3), elements=finite),
        )
    )
)
def test_probabilities_are_valid_for_any_parameters(params):
    k, first, deltas, features, weight = params
    head = OrdinalRegressionHead(3, num_classes=k)
    head.threshold_first = mx.array(first)
    head.threshold_deltas = mx.array(deltas)
    head.output.weight = mx.array(weight)
    thresholds = np.array(head.thresholds())
    assert np.all(np.diff(thresholds) >= 0)  # ordered by construction
    outputs = head(mx.array(features))
    proba = np.array(head.probabilities(outputs))
    assert proba.shape == (5, k)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # numpy predictions use the same probabilities as the loss
    np.testing.assert_allclose(head.predict_proba(outputs), proba, atol=1e-5)
    loss = head.loss(outputs, mx.array(np.arange(5) % k))
    assert np.isfinite(loss.item())


def test_loss_is_the_nll_of_the_predicted_probabilities():
    head = OrdinalRegressionHead(4, num_classes=5)
    x = mx.array(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    y = np.array([0, 1, 2, 3, 4, 2, 1, 0])
    outputs = head(x)
    proba = head.predict_proba(outputs)
    expected = -np.mean(np.log(proba[np.arange(8), y]))
    assert head.loss(outputs, y).item() == pytest.approx(expected, rel=1e-5)


def test_prediction_methods():
    head = OrdinalRegressionHead(2, num_classes=4)
    # P = [0.1, 0.2, 0.3, 0.4] built from its cumulative logits.
    cdf = np.array([[0.1, 0.3, 0.6]])
    outputs = np.log(cdf / (1 - cdf))
    assert head.predict(outputs, method="argmax").tolist() == [3]
    assert head.expected_value(outputs) == pytest.approx([2.0])
    assert head.predict(outputs, method="expected").tolist() == [2]
    assert head.predict(outputs, method="median").tolist() == [2]
    with pytest.raises(ValueError, match="method"):
        head.predict(outputs, method="mode")


def test_two_classes_reduce_to_logistic_regression():
    head = OrdinalRegressionHead(3, num_classes=2)
    outputs = head(mx.array(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)))
    proba = head.predict_proba(outputs)
    np.testing.assert_allclose(proba[:, 0], 1 / (1 + np.exp(-np.array(outputs)[:, 0])), rtol=1e-5)
