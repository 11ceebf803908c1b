"""Config round-trips (fitted state included), save/load, the registry, and clear errors."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest

import mlxbert_heads as H
from mlxbert_heads import (
    BinaryClassificationHead,
    MulticlassClassificationHead,
    RegressionHead,
    create_head,
    default_head_for,
    default_metrics_for,
    head_from_config,
    load_head,
    register_head,
    save_head,
)
from mlxbert_heads.heads import TaskHead

RNG = np.random.default_rng(0)
X = mx.array(RNG.normal(size=(32, 6)).astype(np.float32))


def fitted_heads():
    """One head per task, each with non-default fitted state."""
    binary = create_head("binary", 6, loss="focal", focal_alpha=0.3, hidden_dims=[5], dropout=0.1)
    y2 = (RNG.random(32) < 0.5).astype(int)
    binary.calibrate(np.array(binary(X)) * 3, y2)
    binary.fit_threshold(binary(X), y2)
    multiclass = create_head(
        "multiclass", 6, num_classes=3, label_smoothing=0.1, class_weights=[1, 2, 3]
    )
    multiclass.calibrate(np.array(multiclass(X)) * 5, RNG.integers(0, 3, 32))
    multilabel = create_head("multilabel", 6, num_labels=2, pos_weight=[2.0, 3.0])
    multilabel.fit_thresholds(multilabel(X), RNG.integers(0, 2, (32, 2)))
    regression = create_head(
        "regression", 6, num_targets=2, loss="huber", huber_delta=0.5, uncertainty=True
    )
    regression.fit_scaler(RNG.normal(5.0, 3.0, (32, 2)))
    ordinal = create_head(
        "ordinal", 6, num_classes=5, prediction="expected", class_weights=[1, 1, 2, 1, 1]
    )
    series = create_head(
        "timeseries",
        6,
        horizon=3,
        history_length=8,
        num_covariates=2,
        decomposition="moving_average",
        kernel_size=3,
    )
    series.fit_scaler(RNG.normal(50, 10, (32, 3)))
    return [binary, multiclass, multilabel, regression, ordinal, series]


def extras(head):
    if head.task == "timeseries":
        return {
            "history": mx.array(RNG.normal(size=(32, 8)).astype(np.float32)),
            "covariates": mx.ones((32, 2)),
        }
    return {}


@pytest.mark.parametrize("head", fitted_heads(), ids=lambda h: h.task)
def test_config_round_trip_keeps_fitted_state_and_predictions(head, tmp_path):
    config = head.get_config()
    assert json.loads(json.dumps(config)) == config  # JSON-serialisable
    rebuilt = head_from_config(config)
    assert type(rebuilt) is type(head) and rebuilt.get_config() == config
    # Weights are ordinary parameters: copy them and the predictions match exactly.
    head.eval()
    rebuilt.load_weights(list(__import__("mlx.utils").utils.tree_flatten(head.parameters())))
    rebuilt.eval()
    inputs = extras(head)
    np.testing.assert_array_equal(
        head.predict(head(X, **inputs)), rebuilt.predict(rebuilt(X, **inputs))
    )
    # save_head / load_head: config + safetensors in a folder.
    loaded = load_head(save_head(head, tmp_path / head.task))
    loaded.eval()
    np.testing.assert_array_equal(
        head.predict(head(X, **inputs)), loaded.predict(loaded(X, **inputs))
    )
    assert loaded.get_config() == config


def test_fitted_state_is_in_the_config():
    binary, multiclass, multilabel, regression, _, series = fitted_heads()
    assert binary.get_config()["fitted"]["temperature"] != 1.0
    assert binary.get_config()["fitted"]["threshold"] != 0.5
    assert multiclass.get_config()["fitted"]["temperature"] != 1.0
    assert len(multilabel.get_config()["fitted"]["thresholds"]) == 2
    assert regression.get_config()["fitted"]["target_mean"] != [0.0, 0.0]
    assert series.get_config()["fitted"]["target_std"] != 1.0


def test_fitted_state_is_not_trainable():
    head = fitted_heads()[0]
    names = {k for k, _ in __import__("mlx.utils").utils.tree_flatten(head.trainable_parameters())}
    assert names == {"layers.0.weight", "layers.0.bias", "output.weight", "output.bias"}


def test_registry_lookups():
    assert set(H.available_tasks()) >= {
        "binary",
        "multiclass",
        "multilabel",
        "regression",
        "ordinal",
        "timeseries",
    }
    assert default_head_for("Time-Series") is H.TimeSeriesRegressionHead
    assert default_metrics_for("binary")[0] == "roc_auc"
    assert default_metrics_for("multiclass")[:2] == ("accuracy", "f1_macro")
    assert default_metrics_for("regression")[0] == "rmse"
    assert default_metrics_for("ordinal")[0] == "quadratic_weighted_kappa"
    assert default_metrics_for("timeseries")[0] == "mape"
    for task in H.available_tasks():
        for name in default_metrics_for(task):
            H.metrics.greater_is_better(name)  # every default metric is known


def test_heads_report_their_default_metrics():
    for head in fitted_heads():
        y = {
            "binary": RNG.integers(0, 2, 32),
            "multiclass": np.arange(32) % 3,
            "multilabel": RNG.integers(0, 2, (32, 2)),
            "regression": RNG.normal(size=(32, 2)),
            "ordinal": np.arange(32) % 5,
            "timeseries": RNG.normal(50, 10, (32, 3)),
        }[head.task]
        result = head.metrics(head(X, **extras(head)), y)
        assert set(default_metrics_for(head.task)) <= set(result)
        assert all(isinstance(v, float) for v in result.values())
        for name in result:
            H.metrics.greater_is_better(name)  # model selection knows every reported metric


def test_register_custom_head():
    @register_head("constant-score")
    class ConstantHead(TaskHead):
        def __init__(self, hidden_size, *, scale: float = 1.0, **body):
            super().__init__(hidden_size, 1, **body)
            self.scale = scale

        def __call__(self, features):
            return self.output(self.features(features))[:, 0] * self.scale

    head = create_head("constant_score", 6, scale=2.0)
    assert isinstance(head, ConstantHead) and head(X).shape == (32,)
    with pytest.raises(ValueError, match="already registered"):
        register_head("binary")(ConstantHead)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: create_head("sentiment", 8), "unknown task"),
        (lambda: create_head("binary", 8, num_classes=2), "unknown argument"),
        (lambda: create_head("binary", 0), "hidden_size"),
        (lambda: create_head("binary", 8, loss="hinge"), "unknown loss"),
        (lambda: create_head("multiclass", 8, num_classes=1), "num_classes"),
        (
            lambda: create_head("multiclass", 8, num_classes=3, class_weights=[1, 2]),
            "class_weights",
        ),
        (lambda: create_head("regression", 8, loss="l3"), "unknown loss"),
        (lambda: create_head("ordinal", 8, num_classes=3, prediction="mode"), "prediction"),
        (
            lambda: create_head("timeseries", 8, horizon=2, decomposition="moving_average"),
            "history",
        ),
        (
            lambda: create_head("timeseries", 8, horizon=2, decomposition="stl", history_length=4),
            "decomposition",
        ),
        (lambda: create_head("binary", 8, activation="swish3"), "activation"),
        (lambda: create_head("binary", 8, dropout=1.5), "dropout"),
        (lambda: head_from_config({"hidden_size": 8}), "task"),
        (
            lambda: MulticlassClassificationHead.from_config({"task": "binary", "hidden_size": 8}),
            "task",
        ),
    ],
)
def test_bad_construction_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "head, targets, match",
    [
        (BinaryClassificationHead(6), np.zeros((32, 2)), "shape"),
        (BinaryClassificationHead(6), np.full(32, 2.0), r"\[0, 1\]"),
        (BinaryClassificationHead(6), np.zeros(31), "samples"),
        (MulticlassClassificationHead(6, num_classes=3), np.full(32, 3), "lie in"),
        (MulticlassClassificationHead(6, num_classes=3), np.zeros((32, 4)), "class indices"),
        (MulticlassClassificationHead(6, num_classes=3), np.zeros((32, 3)), "summing to 1"),
        (
            MulticlassClassificationHead(6, num_classes=3, loss="focal"),
            np.full((32, 3), 1 / 3),
            "loss='ce'",
        ),
        (RegressionHead(6, num_targets=2), np.zeros(32), "shape"),
        (H.MultilabelClassificationHead(6, num_labels=2), np.zeros((32, 3)), "shape"),
        (H.MultilabelClassificationHead(6, num_labels=2), np.full((32, 2), 2), r"\[0, 1\]"),
        (H.OrdinalRegressionHead(6, num_classes=3), np.full(32, 0.5), "integer"),
        (BinaryClassificationHead(6), np.full(32, np.nan), "NaN"),
    ],
)
def test_bad_targets_raise_clear_errors(head, targets, match):
    with pytest.raises(ValueError, match=match):
        head.loss(head(X), targets)


def test_bad_features_and_reduction():
    head = BinaryClassificationHead(6)
    with pytest.raises(ValueError, match=r"\(batch, 6\)"):
        head(mx.zeros((4, 7)))
    with pytest.raises(ValueError, match=r"\(batch, 6\)"):
        head(mx.zeros((4, 3, 6)))
    with pytest.raises(ValueError, match="reduction"):
        head.loss(head(X), np.zeros(32), reduction="batchmean")
    with pytest.raises(ValueError, match="uncertainty"):
        RegressionHead(6).predict_std(np.zeros((2, 1)))
    series = create_head("timeseries", 6, horizon=2, history_length=4)
    with pytest.raises(ValueError, match="history"):
        series(X)
    with pytest.raises(ValueError, match="history"):
        series(X, history=mx.zeros((32, 5)))
    with pytest.raises(FileNotFoundError):
        load_head("/nonexistent-head-folder")


def test_loss_reductions_on_heads():
    head = MulticlassClassificationHead(6, num_classes=3)
    y = np.arange(32) % 3
    per_sample = head.loss(head(X), y, reduction="none")
    assert per_sample.shape == (32,)
    assert head.loss(head(X), y).item() == pytest.approx(per_sample.mean().item(), rel=1e-6)


def test_multiclass_soft_targets_mix_the_losses_of_their_parts():
    """Probability rows train with cross-entropy, which is linear in the target: one-hot rows
    give the index loss, and a mix of targets the same mix of losses (distillation)."""
    head = MulticlassClassificationHead(6, num_classes=3)
    outputs = head(X)
    labels = np.arange(32) % 3
    onehot = np.eye(3)[labels]
    teacher = np.random.default_rng(0).dirichlet(np.ones(3), size=32)
    np.testing.assert_allclose(
        np.array(head.loss(outputs, onehot)), np.array(head.loss(outputs, labels)), rtol=1e-6
    )
    mixed = head.loss(outputs, 0.3 * teacher + 0.7 * onehot)
    parts = 0.3 * head.loss(outputs, teacher) + 0.7 * head.loss(outputs, labels)
    np.testing.assert_allclose(np.array(mixed), np.array(parts), rtol=1e-5)
