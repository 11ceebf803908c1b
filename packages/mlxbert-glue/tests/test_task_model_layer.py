"""The task-model layer on its own: a user's head through the fit loop and Classifier, the
head's own loss in training, resume that checks settings and data, file modes."""

from __future__ import annotations

import mlxbert_core  # noqa: F401  isort: skip  (before mlx: the fast BLAS on Linux)

import json
import os
import stat

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_glue import (
    Classifier,
    Examples,
    StaleRunError,
    TrainingConfig,
    create_task_model,
    fit,
    open_task_model,
)
from mlxbert_heads import TaskHead, register_head

from .conftest import TINY_BERT

TEXTS = [f"{word} story number {i}" for i, word in enumerate(["good", "bad"] * 24)]


# A user's own head, registered in this file alone: nothing else in the project knows it.
@register_head("cosine")
class CosineHead(TaskHead):
    """Similarity in [-1, 1]: cosine between a projection of the features and a learned
    direction; trained with MSE."""

    def __init__(self, hidden_size: int, *, width: int = 8, **body):
        super().__init__(hidden_size, width, **body)
        self.width = width
        self.direction = mx.ones((width,)) / np.sqrt(width)

    def __call__(self, features: mx.array) -> mx.array:
        z = self.output(self.features(features))
        cos = (z @ self.direction) / (mx.linalg.norm(z, axis=-1) * mx.linalg.norm(self.direction))
        return cos

    def loss(self, outputs, targets, *, reduction: str = "mean"):
        targets = targets if isinstance(targets, mx.array) else mx.array(np.asarray(targets))
        return nn.losses.mse_loss(outputs, targets.astype(outputs.dtype), reduction)

    def predict(self, outputs):
        return np.asarray(mx.array(outputs).astype(mx.float32)).reshape(-1)

    def metrics(self, outputs, targets):
        diff = self.predict(outputs) - np.asarray(targets).reshape(-1)
        return {"mse": float(np.mean(diff**2))}

    def _head_config(self):
        return {"width": self.width}


def _training(epochs: int = 3, **overrides) -> TrainingConfig:
    values = dict(learning_rate=5e-3, epochs=epochs, batch_size=16, warmup_ratio=0.0, seed=1)
    return TrainingConfig(**{**values, **overrides})


def test_registered_head_trains_through_fit_and_predicts_through_classifier(tmp_path):
    targets = np.array([0.8 if t.startswith("good") else -0.8 for t in TEXTS], np.float32)
    train = Examples(TEXTS, labels=targets)

    def scorer(head, outputs):
        return {"neg_mse": -head.metrics(outputs, targets)["mse"]}

    result = fit(
        lambda: create_task_model(TINY_BERT, "cosine", pooling="mean"),
        train,
        train,
        training=_training(),
        model_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
        max_length=16,
        scorer=scorer,
    )
    losses = [e["loss"] for e in result.epochs]
    assert losses[-1] < losses[0]
    assert result.best["metric"] == "neg_mse"
    clf = Classifier.from_pretrained(tmp_path / "model")
    assert clf.kind == "value"
    outputs = clf.classify_batch(TEXTS[:4])
    assert all(-1.0 <= r["value"] <= 1.0 for r in outputs)
    # The folder's predictions are the best epoch's outputs.
    np.testing.assert_allclose(
        [r["value"] for r in clf.classify_batch(TEXTS)],
        result.valid_outputs.reshape(-1),
        atol=1e-5,
    )


def test_training_uses_the_heads_own_loss(tmp_path, monkeypatch):
    import mlxbert_heads.heads.binary as binary

    calls = {"focal": 0}
    original = binary.binary_focal_loss

    def counting(*args, **kwargs):
        calls["focal"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(binary, "binary_focal_loss", counting)
    labels = np.array([t.startswith("good") for t in TEXTS], np.float32)
    fit(
        lambda: create_task_model(TINY_BERT, "binary", head_options={"loss": "focal"}),
        Examples(TEXTS, labels=labels),
        training=_training(epochs=1, compile=False),
        model_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
        max_length=16,
    )
    assert calls["focal"] >= 3  # one per training step


def test_resume_refuses_other_settings_or_data(tmp_path):
    labels = np.array([t.startswith("good") for t in TEXTS], np.float32)
    args = dict(model_dir=tmp_path / "model", work_dir=tmp_path / "work", max_length=16)
    build = lambda: create_task_model(TINY_BERT, "binary")  # noqa: E731
    fit(build, Examples(TEXTS, labels=labels), training=_training(epochs=1), **args)
    with pytest.raises(StaleRunError, match=r"training\.learning_rate"):
        fit(
            build,
            Examples(TEXTS, labels=labels),
            training=_training(epochs=1, learning_rate=1e-3),
            **args,
        )
    with pytest.raises(StaleRunError, match="data"):
        fit(build, Examples(TEXTS, labels=1 - labels), training=_training(epochs=1), **args)
    with pytest.raises(StaleRunError, match="task"):
        fit(
            build,
            Examples(TEXTS, labels=labels),
            training=_training(epochs=1),
            settings={"task": "other"},
            **args,
        )
    # Same settings: the finished run is reused as it is.
    log = json.loads((tmp_path / "work" / "log.json").read_text())
    again = fit(build, Examples(TEXTS, labels=labels), training=_training(epochs=1), **args)
    assert again.log == log


def test_saved_folder_keeps_the_umask_modes(tmp_path):
    old = os.umask(0o022)
    try:
        labels = np.array([t.startswith("good") for t in TEXTS], np.float32)
        fit(
            lambda: create_task_model(TINY_BERT, "binary"),
            Examples(TEXTS, labels=labels),
            training=_training(epochs=1),
            model_dir=tmp_path / "model",
            work_dir=tmp_path / "work",
            max_length=16,
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "work" / "log.json").stat().st_mode) == 0o644
    model, _tok, info = open_task_model(tmp_path / "model")
    assert info.head_task == "binary" and model.mlxbert_info is info
