import numpy as np
import pandas as pd
import pytest

from mlxbert_kaggle import InputError, align_to_sample, combine, holdout_split, make_folds


def test_stratified_folds_balance_classes_and_are_deterministic():
    y = np.array([0] * 80 + [1] * 20)
    folds = make_folds(100, 5, stratify=y, seed=3)
    assert sorted(np.bincount(folds)) == [20] * 5
    for k in range(5):
        assert (y[folds == k] == 1).sum() == 4
    assert np.array_equal(folds, make_folds(100, 5, stratify=y, seed=3))


@pytest.mark.parametrize("stratify", [None, np.tile([0, 1], 30)])
def test_grouped_folds_never_split_a_group(stratify):
    groups = np.repeat(np.arange(12), 5)
    folds = make_folds(60, 4, stratify=stratify, groups=groups, seed=0)
    for g in range(12):
        assert len(set(folds[groups == g])) == 1
    assert set(folds) == {0, 1, 2, 3}


def test_fold_errors():
    with pytest.raises(InputError, match="at least 2"):
        make_folds(10, 1)
    with pytest.raises(InputError, match="3 groups"):
        make_folds(9, 4, groups=np.repeat([0, 1, 2], 3))


def test_holdout_split_fraction():
    mask = holdout_split(200, 0.1, stratify=np.tile([0, 1], 100), seed=0)
    assert mask.sum() == 20


def test_mean_and_weighted_ensembles():
    a, b = np.array([0.2, 0.8]), np.array([0.6, 0.4])
    out, threshold = combine([a, b])
    assert np.allclose(out, [0.4, 0.6]) and threshold == 0.5
    out, _ = combine([a, b], weights=[3, 1])
    assert np.allclose(out, 0.75 * a + 0.25 * b)


def test_rank_average_and_binary_threshold():
    a = np.array([0.1, 0.2, 0.9, 0.8])
    b = np.array([0.51, 0.52, 0.99, 0.53])
    out, threshold = combine([a, b], method="rank", task="binary")
    assert np.allclose(out, [0.0, 1 / 3, 1.0, 2 / 3])
    # a predicts 2 positives, b 4: the ensemble keeps 3 of 4
    assert (out >= threshold).sum() == 3


def test_ensemble_errors():
    with pytest.raises(InputError, match="2 values for 3 models"):
        combine([np.zeros(2)] * 3, weights=[1, 2])
    with pytest.raises(InputError, match="shape"):
        combine([np.zeros(2), np.zeros(3)])
    with pytest.raises(InputError, match="regression"):
        combine([np.zeros(2)] * 2, method="rank", task="regression")
    with pytest.raises(InputError, match="unknown ensemble"):
        combine([np.zeros(2)], method="median")


def test_align_to_sample_orders_ids_and_columns():
    sample = pd.DataFrame({"id": ["3", "1", "2"], "target": [0, 0, 0]})
    preds = pd.DataFrame({"id": ["1", "2", "3"], "target": [1, 0, 1]})
    out = align_to_sample(preds, sample)
    assert out["id"].tolist() == ["3", "1", "2"] and out["target"].tolist() == [1, 1, 0]


@pytest.mark.parametrize(
    "preds, message",
    [
        (pd.DataFrame({"id": ["1", "2"], "target": [1, 0]}), "not in the input"),
        (pd.DataFrame({"id": ["1", "1", "2"], "target": [1, 0, 1]}), "duplicated"),
        (pd.DataFrame({"id": ["1", "2", "3"], "other": [1, 0, 1]}), "wants column"),
    ],
)
def test_align_errors(preds, message):
    sample = pd.DataFrame({"id": ["1", "2", "3"], "target": [0, 0, 0]})
    with pytest.raises(InputError, match=message):
        align_to_sample(preds, sample)
