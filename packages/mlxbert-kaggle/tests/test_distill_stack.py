"""Distillation (a student on its teachers' fold-k soft predictions) and stacking (a
level-2 model over out-of-fold predictions), on CV runs of real tweets with a tiny BERT."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_kaggle import InputError, load_model, train_table
from mlxbert_kaggle.cli import app
from mlxbert_kaggle.distill import distill, mixed_targets, soften
from mlxbert_kaggle.stacking import MetaModel, features
from mlxbert_kaggle.targets import TargetSpec
from mlxbert_kaggle.training import predict_raw

from .conftest import KAGGLE_DATA
from .power_helpers import FAST, fast_config, table_args, tweets

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two CV runs of the same 32 tweets and folds (another learning rate)."""
    if not KAGGLE_DATA.is_dir():
        pytest.skip(f"real Kaggle files not found at {KAGGLE_DATA} (the shared data folder)")
    root = tmp_path_factory.mktemp("runs")
    train, test = tweets(KAGGLE_DATA, root)
    for name, lr in (("a", None), ("b", 3e-4)):
        train_table(output=root / name, config=fast_config(lr=lr), **table_args(train, folds=2))
    return root, train, test


def test_student_learns_from_the_teachers_fold_models_mixed_with_labels(runs, tmp_path):
    root, train, test = runs
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(root / "a"), "--teacher", str(root / "b")]
    args += ["--student", FAST["model"], "--train", str(train), "--target", "target"]
    args += ["--text", "text", "--id-col", "id", "--folds", "2", "--epochs", "1"]
    args += ["--max-length", "24", "--batch-size", "8", "--temperature", "3", "--alpha", "0.7"]
    result = runner.invoke(app, [*args, "--output", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["distill"]["temperature"] == 3 and summary["mode"] == "cv"
    folds = np.asarray(json.loads((out / "_work" / "folds.json").read_text()))
    frame = pd.read_csv(train)
    spec = TargetSpec.from_dict(summary["target"])
    y = spec.encode(frame, "train")
    for k in (0, 1):
        rows = frame[folds != k].reset_index(drop=True)
        teachers = []
        for name in ("a", "b"):  # fold k's targets come from each teacher's fold-k model
            m = load_model(root / name / f"fold-{k + 1}")
            texts = m.template.render(rows, "rows")
            teachers.append(predict_raw(m.model, m.tokenizer, texts, task="binary", max_length=24))
        soft = soften("binary", np.mean(teachers, axis=0), 3.0)
        expected = mixed_targets(spec, soft, y[folds != k], 0.7)
        np.testing.assert_allclose(
            np.load(out / "_distill" / f"fold-{k + 1}.npy"), expected, atol=1e-5
        )
    # the student's CV is scored on the real labels
    oof = pd.read_csv(out / "oof.csv")
    assert set(oof["target"]) <= {0, 1} and len(oof) == len(frame)
    predicted = runner.invoke(
        app,
        ["predict", "--model", str(out), "--input", str(test), "--output", str(tmp_path / "p.csv")],
    )
    assert predicted.exit_code == 0, predicted.output


def test_distill_refuses_teachers_on_other_folds(runs, tmp_path):
    root, train, _ = runs
    with pytest.raises(InputError, match="other rows or folds"):
        distill(
            [root / "a"],
            output=tmp_path / "s",
            config=fast_config(seed=5),  # another seed: other folds
            **table_args(train, folds=2),
        )
    assert not (tmp_path / "s").exists()


def test_soft_targets_temperature_and_mix():
    p = np.array([0.9, 0.5, 0.2])
    hot = soften("binary", p, 2.0)
    assert hot[1] == pytest.approx(0.5) and 0.5 < hot[0] < 0.9 and 0.2 < hot[2] < 0.5
    proba = np.array([[0.7, 0.2, 0.1]])
    soft = soften("multiclass", proba, 1e6)
    np.testing.assert_allclose(soft, np.full((1, 3), 1 / 3), atol=1e-5)
    spec = TargetSpec(["c"], "multiclass", labels=["x", "y", "z"])
    np.testing.assert_allclose(
        mixed_targets(spec, proba, np.array([2]), 0.25), [[0.175, 0.05, 0.775]], atol=1e-6
    )


def test_multiclass_student_trains_on_soft_probability_targets(tmp_path):
    rng = np.random.default_rng(0)
    words = ["awful dull bad", "great fun good", "odd plain flat"]
    cls = rng.integers(0, 3, 24)
    frame = pd.DataFrame({"text": [f"{words[c]} {i}" for i, c in enumerate(cls)], "k": cls})
    table = {"train": frame, "target": "k", "text": ["text"], "task": "multiclass", "folds": 2}
    train_table(output=tmp_path / "t", config=fast_config(), **table)
    summary = distill([tmp_path / "t"], output=tmp_path / "s", config=fast_config(), **table)
    targets = np.load(tmp_path / "s" / "_distill" / "fold-1.npy")
    assert targets.shape[1] == 3 and np.allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(summary["score"])


def test_stack_scores_runs_like_train_and_predicts(runs, tmp_path):
    root, _train, test = runs
    out = tmp_path / "stack"
    result = runner.invoke(
        app, ["stack", "--run", str(root / "a"), "--run", str(root / "b"), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "stack.json").read_text())
    metric = data["metric"]
    for name, scores in zip("ab", data["scores"]["runs"]):  # each run alone: its own CV score
        own = json.loads((root / name / "metrics.json").read_text())
        assert scores[metric] == pytest.approx(own["cv"][metric])
    assert {"runs", "mean", "stack"} == set(data["scores"])
    assert data["meta"]["model"] == "logistic" and len(data["meta"]["parts"][0]["coef"][0]) == 2
    # predict --model STACK: each run's fold ensemble, then the meta-model's numbers
    pred = tmp_path / "p.csv"
    args = ["predict", "--model", str(out), "--input", str(test), "--output", str(pred)]
    result = runner.invoke(app, [*args, "--id-col", "id", "--proba"])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(pred)
    frame = pd.read_csv(test)
    raws = []
    for name in "ab":
        parts = []
        for k in (1, 2):
            m = load_model(root / name / f"fold-{k}")
            texts = m.template.render(frame, "test")
            parts.append(predict_raw(m.model, m.tokenizer, texts, task="binary", max_length=24))
        raws.append(np.mean(parts, axis=0))
    meta = MetaModel.from_dict(data["meta"])
    np.testing.assert_allclose(got["proba_1"], meta.predict(features("binary", raws)), atol=1e-5)
    assert got["id"].tolist() == frame["id"].tolist()
    bad = runner.invoke(app, [*args, "--weights", "1", "--overwrite"])
    assert bad.exit_code == 2 and "stack" in bad.output
