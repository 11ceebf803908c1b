"""Pseudo-labelling: fold k's pseudo rows come from the model that never saw fold k's
validation rows, never include a validation row's text, and the CV score is on real labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_kaggle import InputError, score
from mlxbert_kaggle import cv as cv_module
from mlxbert_kaggle.cli import app
from mlxbert_kaggle.pseudo import train_pseudo_labelled
from mlxbert_kaggle.targets import TargetSpec

from .power_helpers import fast_config, table_args, tweets


def test_pseudo_labels_never_come_from_a_rows_own_validation_fold(
    tmp_path, kaggle_data, monkeypatch
):
    train, test = tweets(kaggle_data, tmp_path)
    # The unlabelled table repeats ten training tweets: a fold must not train on a copy of
    # one of its own validation rows.
    unlabelled = pd.concat([pd.read_csv(test), pd.read_csv(train).head(10).drop(columns="target")])
    unlabelled.to_csv(tmp_path / "unlabelled.csv", index=False)
    fits = []
    original = cv_module.fit_model

    def recording(train_texts, y_train, valid_texts, y_valid, **kwargs):
        fits.append((str(kwargs["model_dir"]), list(train_texts), list(valid_texts), y_valid))
        return original(train_texts, y_train, valid_texts, y_valid, **kwargs)

    monkeypatch.setattr(cv_module, "fit_model", recording)
    out = tmp_path / "pseudo"
    summary = train_pseudo_labelled(
        unlabelled=tmp_path / "unlabelled.csv",
        output=out,
        threshold=0.5,  # every row is confident: the leak rules alone decide
        rounds=1,
        config=fast_config(),
        **table_args(train, folds=2),
    )
    record = json.loads((out / "pseudo.json").read_text())
    first, second = fits[:2], fits[2:]
    assert len(second) == 2 and summary["models"] == ["round-1/fold-1", "round-1/fold-2"]
    left_out = 0
    for k, (_where, train_texts, valid_texts, _) in enumerate(second):
        fold = record["rounds_done"][1]["folds"][k]
        # the labeller is round 0's fold-k model, trained without fold k's validation rows
        assert fold["labelled_by"] == f"round-0/fold-{k + 1}"
        labeller = first[k]
        assert labeller[0].endswith(f"round-0/fold-{k + 1}")
        assert labeller[2] == valid_texts and not set(labeller[1]) & set(valid_texts)
        # no validation text reaches training, under its own or a pseudo label
        assert not set(train_texts) & set(valid_texts)
        real = len(first[k][1])
        assert len(train_texts) == real + fold["used"] and fold["used"] > 0
        left_out += fold["left_out_as_validation_text"]
    assert left_out > 0  # the repeated tweets were caught
    # the CV score is on the real labels of every training row, once
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == 32 and sorted(oof["fold"].unique()) == [1, 2]
    spec = TargetSpec.from_dict(summary["target"])
    y = spec.encode(oof, "oof")
    raw = np.load(out / "round-1" / "_work" / "oof.npy")
    assert summary["cv"]["roc_auc"] == pytest.approx(score(spec, y, raw)["roc_auc"])
    assert [s["round"] for s in summary["pseudo"]["scores"]] == [0, 1]
    # the run predicts as any training output: the last round's folds
    result = CliRunner().invoke(
        app,
        ["predict", "--model", str(out), "--input", str(test), "--output", str(tmp_path / "p.csv")],
    )
    assert result.exit_code == 0, result.output
    assert "round-1" in json.dumps(json.loads((out / "metrics.json").read_text())["models"])


def test_pseudo_labelling_refuses_regression_and_hold_out(tmp_path, kaggle_data):
    train, test = tweets(kaggle_data, tmp_path, n_train=12, n_test=4)
    with pytest.raises(InputError, match="class probabilities"):
        train_pseudo_labelled(
            unlabelled=test, output=tmp_path / "r", **table_args(train, folds=2, task="regression")
        )
    with pytest.raises(InputError, match="--folds"):
        train_pseudo_labelled(unlabelled=test, output=tmp_path / "h", **table_args(train))
    assert not (tmp_path / "r").exists() and not (tmp_path / "h").exists()


def test_train_pseudo_label_flags_reach_the_pseudo_run(tmp_path, kaggle_data):
    train, test = tweets(kaggle_data, tmp_path, n_train=12, n_test=4)
    args = ["train", "--train", str(train), "--target", "target", "--text", "text"]
    args += ["--folds", "2", "--task", "regression", "--pseudo-label", str(test)]
    result = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "class probabilities" in result.output
    assert not (tmp_path / "o").exists()
    result = CliRunner().invoke(
        app,
        [
            *args[:-4],
            "--pseudo-label",
            str(test),
            "--pseudo-threshold",
            "0.3",
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "--pseudo-threshold" in result.output
