"""Metric input validation: empty, mismatched, NaN and mis-shaped inputs raise ValueError
with a message that says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from mlxbert_heads import metrics as M

LABEL_METRICS = [
    M.accuracy,
    M.precision,
    M.recall,
    M.f1,
    M.matthews_corrcoef,
    M.quadratic_weighted_kappa,
    M.hamming_loss,
    M.subset_accuracy,
]
VALUE_METRICS = [M.mse, M.rmse, M.rmsle, M.mae, M.r2, M.mape, M.pearson, M.spearman, M.kendall_tau]


@pytest.mark.parametrize(
    "metric",
    LABEL_METRICS
    + VALUE_METRICS
    + [M.roc_auc, M.log_loss, M.top_k_accuracy, M.directional_accuracy],
)
def test_empty_mismatched_and_nan_inputs(metric):
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match="samples"):
        metric([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        metric([0.0, 1.0, 1.0], [0.0, np.nan, 1.0])


def test_shape_and_value_errors():
    with pytest.raises(ValueError, match="non-integer"):
        M.f1([0, 1, 1], [0.2, 0.9, 0.4])
    with pytest.raises(ValueError, match="average"):
        M.f1([0, 1], [0, 1], average="samples_avg")
    with pytest.raises(ValueError, match=r"multiclass|classes"):
        M.f1([0, 1, 2], [0, 1, 2])  # binary average on three classes
    with pytest.raises(ValueError, match="pos_label"):
        M.precision([2, 3], [2, 3])
    with pytest.raises(ValueError, match="one class"):
        M.roc_auc([1, 1, 1], [0.1, 0.4, 0.3])
    with pytest.raises(ValueError, match="sum"):
        M.roc_auc([0, 1, 2], np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="only one label"):
        M.log_loss([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.log_loss([0, 1], [0.2, 1.3])
    with pytest.raises(ValueError, match="-1"):
        M.rmsle([0.0, 1.0], [-2.0, 1.0])
    with pytest.raises(ValueError, match="outputs"):
        M.mse(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least two"):
        M.pearson([1.0], [2.0])
    with pytest.raises(ValueError, match="two steps"):
        M.directional_accuracy(np.zeros((3, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="k must"):
        M.top_k_accuracy([0, 1], np.eye(2), k=0)
    with pytest.raises(ValueError, match="columns"):
        M.top_k_accuracy([0, 1, 2], np.eye(2)[[0, 1, 1]])
    with pytest.raises(ValueError, match="scalar"):
        M.accuracy(1, 1)


def test_inputs_may_be_lists_or_mlx_arrays():
    import mlx.core as mx

    assert M.accuracy(mx.array([0, 1, 1]), [0, 1, 0]) == pytest.approx(2 / 3)
    assert M.mse(mx.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(2.0)


def test_greater_is_better():
    assert M.greater_is_better("roc_auc") and M.greater_is_better("f1_macro")
    assert not M.greater_is_better("rmse") and not M.greater_is_better("log_loss")
    with pytest.raises(ValueError, match="unknown metric"):
        M.greater_is_better("bleu")
