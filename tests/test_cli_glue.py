"""`mlxbert glue finetune` / `mlxbert glue eval` wired to mlxbert-glue, on real SST-2 rows
with a tiny random BERT."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlxbert_kaggle.cli import app

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue"
TINY = str(REPO / "packages" / "mlxbert-kaggle" / "tests" / "fixtures" / "tiny-bert")


@pytest.mark.skipif(not GLUE.is_dir(), reason=f"GLUE files not found at {GLUE}")
def test_glue_finetune_then_eval(tmp_path):
    runner = CliRunner()
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
            TINY,
            "--output",
            str(out),
            "--epochs",
            "1",
            "--max-train-samples",
            "64",
            "--seed",
            "1",
            "--max-length",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "GLUE sst2" in result.output and (out / "mlxbert.json").is_file()
    report = tmp_path / "dev.json"
    result = runner.invoke(
        app,
        [
            "glue",
            "eval",
            "--task",
            "sst2",
            "--data-dir",
            str(GLUE),
            "--model",
            str(out),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["num_examples"] == 872 and 0.0 <= data["metrics"]["accuracy"] <= 1.0


def test_glue_unknown_task_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(
        app, ["glue", "eval", "--task", "nope", "--data-dir", str(tmp_path), "--model", TINY]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
