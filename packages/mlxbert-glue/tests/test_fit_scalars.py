"""The fit loop's hooks for reports and trackers: per-step and per-epoch scalars through the
reporter, and the validation examples kept next to their outputs."""

from __future__ import annotations

import mlxbert_core  # noqa: F401  isort: skip  (before mlx: the fast BLAS on Linux)

import json

import numpy as np

from mlxbert_glue import Examples, Reporter, TrainingConfig, create_task_model, fit
from mlxbert_glue.task_model import epoch_scalars, load_examples

from .conftest import TINY_BERT

TEXTS = [f"{word} story number {i}" for i, word in enumerate(["good", "bad"] * 12)]


class Recording(Reporter):
    def __init__(self):
        self.calls = []

    def scalars(self, step, values, *, kind="step", run=""):
        self.calls.append((kind, step, dict(values), run))


def test_scalars_and_valid_examples(tmp_path):
    labels = np.array([t.startswith("good") for t in TEXTS], np.float32)
    reporter = Recording()
    training = TrainingConfig(learning_rate=1e-3, epochs=2, batch_size=2, seed=1, compile=False)
    result = fit(
        lambda: create_task_model(TINY_BERT, "binary"),
        Examples(TEXTS, labels=labels),
        Examples(TEXTS[:6], labels=labels[:6]),
        training=training,
        model_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
        max_length=16,
        scorer=lambda head, outputs: {
            "accuracy": float(np.mean((outputs[:, 0] > 0) == labels[:6]))
        },
        reporter=reporter,
        label="fold 1/2",
    )
    steps = [(s, v) for kind, s, v, run in reporter.calls if kind == "step"]
    epochs = [(s, v) for kind, s, v, run in reporter.calls if kind == "epoch"]
    # 12 batches per epoch; the loss is read (and sent) every tenth batch of an epoch.
    assert [s for s, _ in steps] == [10, 22]
    assert all(set(v) == {"train/loss", "train/learning_rate"} for _, v in steps)
    assert {run for *_, run in reporter.calls} == {"fold 1/2"}
    assert [s for s, _ in epochs] == [1, 2]
    for (_, values), entry in zip(epochs, result.epochs):
        assert values == epoch_scalars(entry)
        assert values["epoch/loss"] == entry["loss"]
        assert values["valid/accuracy"] == entry["metrics"]["accuracy"]
    kept = load_examples(tmp_path / "work" / "valid_examples.json")
    assert kept.texts == TEXTS[:6] and kept.pairs is None
    np.testing.assert_array_equal(kept.labels, labels[:6])
    assert len(np.load(tmp_path / "work" / "valid_outputs.npy")) == 6
    assert json.loads((tmp_path / "work" / "log.json").read_text())["finished"]
