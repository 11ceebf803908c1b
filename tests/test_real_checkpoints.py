"""Real checkpoints end to end through the command line: M2-BERT fine-tuned from a Composer
checkpoint and reloaded; a Hugging Face classifier by hub id (from the offline cache);
several GLUE tasks evaluated into one report with the GLUE score."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_glue import Classifier, finetune, load_task
from mlxbert_kaggle.cli import app

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GLUE = SHARED / "data" / "glue"
FIXTURES = SHARED / "fixtures"
TINY = REPO / "packages" / "mlxbert-glue" / "tests" / "fixtures" / "tiny-bert"
runner = CliRunner()
needs_glue = pytest.mark.skipif(not GLUE.is_dir(), reason="the real GLUE files are absent")


@needs_glue
def test_m2_finetunes_from_a_composer_checkpoint_and_reloads(tmp_path, m2_folder):
    folder = m2_folder(tmp_path, "glue_tiny", "composer.pt")
    out = tmp_path / "sst2"
    result = runner.invoke(
        app,
        [
            "glue",
            "finetune",
            "--task",
            "sst2",
            "--data-dir",
            str(GLUE),
            "--model",
            str(folder),
            "--checkpoint",
            "composer.pt",
            "--output",
            str(out),
            "--epochs",
            "1",
            "--seed",
            "1",
            "--max-train-samples",
            "64",
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    clf = Classifier.from_pretrained(out)
    assert clf.info.architecture == "m2_bert" and clf.labels == ["negative", "positive"]
    dev = load_task("sst2", GLUE, "dev")
    # The reloaded folder predicts exactly what the fit scored on the dev set.
    kept = np.load(out / "runs" / "seed-1" / "valid_outputs.npy")
    np.testing.assert_allclose(clf.logits(dev.texts), kept, atol=1e-5)
    # `mlxbert train` takes the same checkpoint flag.
    table = pd.DataFrame({"text": dev.texts[:40], "label": dev.labels[:40]})
    table.to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(
        app,
        [
            "train",
            "--train",
            str(tmp_path / "t.csv"),
            "--target",
            "label",
            "--text",
            "text",
            "--model",
            str(folder),
            "--checkpoint",
            "composer.pt",
            "--epochs",
            "1",
            "--output",
            str(tmp_path / "run"),
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not (SHARED / "data" / "kaggle").is_dir(), reason="Kaggle files absent")
def test_m2_through_a_kaggle_preset(tmp_path, m2_folder):
    folder = m2_folder(tmp_path, "glue_tiny", "composer.pt")
    result = runner.invoke(
        app,
        [
            "kaggle",
            "run",
            "nlp-disaster",
            "--data-dir",
            str(SHARED / "data" / "kaggle"),
            "--output",
            str(tmp_path / "run"),
            "--model",
            str(folder),
            "--checkpoint",
            "composer.pt",
            "--folds",
            "2",
            "--max-rows",
            "60",
            "--epochs",
            "1",
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "submission.csv").is_file()


def _hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """``files`` as huggingface_hub's cache holds a download of ``repo_id``."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(files, repo / "snapshots" / sha)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the shared fixtures are absent")
def test_a_hub_classifier_by_repo_id(tmp_path):
    _hub_cache(tmp_path / "hub", "org/tiny-sentiment", FIXTURES / "bert" / "seqcls3")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    mlxbert = Path(sys.executable).with_name("mlxbert")
    done = subprocess.run(
        [str(mlxbert), "classify", "--model", "org/tiny-sentiment", "a fine day"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(w in done.stdout for w in ("negative", "neutral", "positive"))
    pd.DataFrame({"text": ["good", "bad", "so so"]}).to_csv(tmp_path / "in.csv", index=False)
    done = subprocess.run(
        [
            str(mlxbert),
            "predict",
            "--model",
            "org/tiny-sentiment",
            "--input",
            str(tmp_path / "in.csv"),
            "--text",
            "text",
            "--output",
            str(tmp_path / "out.csv"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    predicted = pd.read_csv(tmp_path / "out.csv")["label"]
    assert set(predicted) <= {"negative", "neutral", "positive"} and len(predicted) == 3


@needs_glue
def test_several_glue_tasks_in_one_report(tmp_path):
    quick = dict(
        epochs=1,
        seeds=[1],
        max_train_samples=32,
        max_eval_samples=40,
        max_length=32,
        progress=False,
    )
    for task in ("sst2", "rte"):
        finetune(task, str(TINY), GLUE, tmp_path / "models" / task, **quick)
    report = tmp_path / "glue.json"
    result = runner.invoke(
        app,
        [
            "glue",
            "eval",
            "--task",
            "all",
            "--data-dir",
            str(GLUE),
            "--model",
            str(tmp_path / "models"),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert set(data["tasks"]) == {"sst2", "rte"}
    scores = [data["tasks"][t]["score"] for t in ("sst2", "rte")]
    assert data["glue"]["score"] == pytest.approx(np.mean(scores))
    assert not data["glue"]["complete"] and "cola" in data["glue"]["missing"]
    assert "GLUE score" in report.with_suffix(".md").read_text()
    # The same by TASK=PATH, and a task without a model is named.
    pairs = [f"{t}={tmp_path / 'models' / t}" for t in ("sst2", "rte")]
    args = ["glue", "eval", "--task", "sst2,rte", "--data-dir", str(GLUE)]
    models = [arg for pair in pairs for arg in ("--model", pair)]
    result = runner.invoke(app, [*args, *models])
    assert result.exit_code == 0 and "GLUE score" in result.output, result.output
    result = runner.invoke(
        app,
        [
            "glue",
            "eval",
            "--task",
            "sst2,cola",
            "--data-dir",
            str(GLUE),
            "--model",
            str(tmp_path / "models"),
        ],
    )
    assert result.exit_code == 2 and "no model folder for cola" in result.output
