"""The Kaggle presets end to end on the real competition files (row subsets, a tiny random
BERT to stay fast): valid submissions, OOF predictions reproduced from the saved fold models,
and an interrupted run resumed to the same result as an uninterrupted one."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_kaggle import get_preset, read_table, run_preset
from mlxbert_kaggle.cli import app

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "kaggle"
TINY = str(REPO / "packages" / "mlxbert-kaggle" / "tests" / "fixtures" / "tiny-bert")
FAST = dict(model=TINY, epochs=1, max_length=32, batch_size=16, compile=False)

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real Kaggle files not found at {DATA} (the shared data folder)"
)


def _sample(preset: str) -> pd.DataFrame:
    p = get_preset(preset)
    return pd.read_csv(p.locate(DATA) / p.sample_submission, dtype=str)


@pytest.mark.parametrize("preset", ["titanic", "house-prices", "nlp-disaster"])
def test_preset_runs_to_a_valid_submission(tmp_path, preset):
    summary = run_preset(preset, DATA, tmp_path / preset, folds=2, max_rows=60, **FAST)
    assert summary["mode"] == "cv" and len(summary["folds"]) == 2
    assert summary["metric"] == get_preset(preset).metric
    assert np.isfinite(summary["score"])
    assert summary["seconds"] > summary["train_seconds"] > 0  # the time includes predicting
    sub = pd.read_csv(tmp_path / preset / "submission.csv", dtype=str)
    sample = _sample(preset)
    assert list(sub.columns) == list(sample.columns)
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()  # every id, in order
    assert not sub.isna().any().any()
    values = sub.iloc[:, 1]
    if preset == "house-prices":
        prices = values.astype(float)
        assert (prices > 0).all() and prices.between(1e3, 1e7).all()
    else:
        assert set(values) <= {"0", "1"}


def test_predict_reproduces_oof_from_saved_fold_models(tmp_path):
    out = tmp_path / "titanic"
    run_preset("titanic", DATA, out, folds=2, max_rows=80, **FAST)
    oof = pd.read_csv(out / "oof.csv", dtype={"PassengerId": str})
    train = read_table(DATA / "titanic" / "train.csv", keep_text=["PassengerId"])
    runner = CliRunner()
    for fold in (1, 2):
        ids = oof.loc[oof["fold"] == fold, "PassengerId"]
        rows = train.set_index("PassengerId").loc[ids.tolist()].reset_index()
        rows.drop(columns=["Survived"]).to_csv(tmp_path / f"in{fold}.csv", index=False)
        result = runner.invoke(
            app,
            [
                "predict",
                "--model",
                str(out / f"fold-{fold}"),
                "--input",
                str(tmp_path / f"in{fold}.csv"),
                "--output",
                str(tmp_path / f"p{fold}.csv"),
                "--id-col",
                "PassengerId",
                "--proba",
            ],
        )
        assert result.exit_code == 0, result.output
        pred = pd.read_csv(tmp_path / f"p{fold}.csv", dtype={"PassengerId": str})
        expected = oof.loc[oof["fold"] == fold]
        assert pred["PassengerId"].tolist() == expected["PassengerId"].tolist()
        np.testing.assert_allclose(pred["proba_1"], expected["proba_1"], atol=1e-5)
        assert pred["Survived"].tolist() == expected["pred_Survived"].tolist()


@pytest.mark.parametrize("kill", ["FOLDS", "EPOCHS"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, kill):
    args = [
        "kaggle",
        "run",
        "titanic",
        "--data-dir",
        str(DATA),
        "--folds",
        "2",
        "--max-rows",
        "60",
        "--model",
        TINY,
        "--epochs",
        "2",
        "--max-length",
        "32",
        "--batch-size",
        "16",
    ]
    runner = CliRunner()
    whole = runner.invoke(app, [*args, "--output", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output

    cut = tmp_path / "cut"
    env = {f"MLXBERT_KAGGLE_KILL_AFTER_{kill}": "1"}
    killed = runner.invoke(app, [*args, "--output", str(cut)], env=env)
    assert killed.exit_code == 3, killed.output
    assert "--resume" in killed.output
    assert not (cut / "metrics.json").exists() and not (cut / "submission.csv").exists()
    if kill == "FOLDS":
        assert (cut / "fold-1" / "mlxbert.json").is_file() and not (cut / "fold-2").exists()
    else:
        assert (cut / "_work" / "fold-1" / "state" / "trainer_state.json").is_file()

    again = runner.invoke(app, [*args, "--output", str(cut)])
    assert again.exit_code == 2 and "--resume" in again.output  # refuses to clobber

    resumed = runner.invoke(app, [*args, "--output", str(cut), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    if kill == "FOLDS":
        assert "already finished" in resumed.output
    else:
        assert "resuming after epoch 1" in resumed.output
    a = pd.read_csv(tmp_path / "whole" / "oof.csv")
    b = pd.read_csv(cut / "oof.csv")
    np.testing.assert_allclose(a["proba_1"], b["proba_1"], atol=1e-5)
    sa = pd.read_csv(tmp_path / "whole" / "submission.csv")
    sb = pd.read_csv(cut / "submission.csv")
    assert sa.equals(sb)
