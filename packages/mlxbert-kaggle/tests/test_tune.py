"""``mlxbert tune``: trials scored by train's CV, pruning per fold, the best settings and a
ready command, and a study that resumes after an interrupt without repeating trials."""

from __future__ import annotations

import json
import shlex
import sys

import pytest
from typer.testing import CliRunner

from mlxbert_kaggle import InputError
from mlxbert_kaggle.cli import app
from mlxbert_kaggle.tune import tune

from .power_helpers import FAST, fast_config, table_args, tweets

optuna = pytest.importorskip("optuna")
runner = CliRunner()


def _states(out):
    best = json.loads((out / "best.json").read_text())
    return best, [t["state"] for t in best["trials"]]


def test_cli_tune_writes_best_settings_and_a_command_train_accepts(tmp_path, kaggle_data):
    train, _ = tweets(kaggle_data, tmp_path)
    out = tmp_path / "search"
    args = ["tune", "--train", str(train), "--target", "target", "--text", "text"]
    args += ["--folds", "2", "--model", FAST["model"], "--epochs", "1", "--batch-size", "8"]
    args += ["--max-length", "24", "--trials", "2", "--search", "lr", "--search", "pooling"]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    best, states = _states(out)
    assert states == ["complete", "complete"]
    assert (out / "study.db").is_file()
    trial = best["best"]
    assert (out / trial["folder"] / "metrics.json").is_file()
    run = json.loads((out / trial["folder"] / "metrics.json").read_text())
    assert run["score"] == pytest.approx(trial["score"])  # the trial's score is train's CV
    assert set(trial["params"]) == {"lr_factor", "pooling"}
    words = shlex.split(best["command"])
    assert words[:2] == ["mlxbert", "train"] and "--pooling" in words and "--lr" in words
    assert words[words.index("--lr") + 1] == str(trial["config"]["lr"])
    # the command is ready: train takes it (the search's own run of it is trial["folder"])
    again = runner.invoke(app, [*words[1:-1], str(tmp_path / "best"), "--no-report"])
    assert again.exit_code == 0, again.output
    rerun = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert rerun["score"] == pytest.approx(trial["score"])


def test_tune_resumes_after_an_interrupt_without_repeating_finished_trials(
    tmp_path, kaggle_data, monkeypatch
):
    train, _ = tweets(kaggle_data, tmp_path)
    table = table_args(train, folds=2)
    out = tmp_path / "search"
    common = dict(output=out, base=fast_config(), trials=3, search=["lr"])
    # killed after trial 0 finished
    monkeypatch.setenv("MLXBERT_KAGGLE_KILL_AFTER_TRIALS", "1")
    with pytest.raises(Exception, match="simulated kill"):
        tune(table, **common)
    monkeypatch.delenv("MLXBERT_KAGGLE_KILL_AFTER_TRIALS")
    first = (out / "trials" / "trial-0" / "metrics.json").stat().st_mtime_ns
    # killed in the middle of trial 1, after its first fold
    monkeypatch.setenv("MLXBERT_KAGGLE_KILL_AFTER_FOLDS", "1")
    with pytest.raises(Exception, match="simulated kill"):
        tune(table, **common, resume=True)
    monkeypatch.delenv("MLXBERT_KAGGLE_KILL_AFTER_FOLDS")
    assert (out / "trials" / "trial-1" / "fold-1" / "mlxbert.json").is_file()
    fold1 = (out / "trials" / "trial-1" / "fold-1" / "model.safetensors").stat().st_mtime_ns

    result = tune(table, **common, resume=True)
    best, states = _states(out)
    assert result == best
    # trial 0 kept as it was; trial 1 failed by the interrupt and continued as trial 2 in
    # its folder, reusing the finished fold; trial 3 is new: three trials run in all
    assert states == ["complete", "fail", "complete", "complete"]
    assert [t["folder"] for t in best["trials"]] == ["trial-0", "trial-1", "trial-1", "trial-3"]
    assert best["trials"][1]["interrupted"] and best["trials"][2]["continues_trial"] == 1
    assert best["trials"][2]["params"] == best["trials"][1]["params"]
    assert (out / "trials" / "trial-0" / "metrics.json").stat().st_mtime_ns == first
    assert (out / "trials" / "trial-1" / "fold-1" / "model.safetensors").stat().st_mtime_ns == fold1
    # a finished study with the same budget runs nothing more
    assert tune(table, **common, resume=True)["trials"] == best["trials"]
    # a process killed outright leaves its trial "running": it is continued too
    study = optuna.load_study(study_name="mlxbert-tune", storage=f"sqlite:///{out / 'study.db'}")
    left = study.ask()
    left.suggest_float("lr_factor", 0.25, 4.0, log=True)
    left.set_user_attr("folder", "trial-4")
    (out / "trials" / "trial-4").mkdir()
    after = tune(table, **{**common, "trials": 4}, resume=True)["trials"]
    assert [(t["state"], t["folder"]) for t in after[4:]] == [
        ("fail", "trial-4"),
        ("complete", "trial-4"),
    ]
    # other settings are refused, naming what differs
    with pytest.raises(InputError, match=r"max_rows \(None -> 20\)"):
        tune({**table, "max_rows": 20}, **common, resume=True)


def test_a_pruned_trial_stops_after_its_fold_and_leaves_no_folder(
    tmp_path, kaggle_data, monkeypatch
):
    train, _ = tweets(kaggle_data, tmp_path)
    prune = optuna.pruners.MedianPruner.prune
    monkeypatch.setattr(
        optuna.pruners.MedianPruner,
        "prune",
        lambda self, study, trial: trial.number == 1 or prune(self, study, trial),
    )
    out = tmp_path / "search"
    best = tune(table_args(train, folds=3), output=out, base=fast_config(), trials=2, search=["lr"])
    pruned = best["trials"][1]
    assert pruned["state"] == "pruned" and list(pruned["fold_scores"]) == ["1"]
    assert not (out / "trials" / "trial-1").exists()
    assert list(best["trials"][0]["fold_scores"]) == ["1", "2", "3"]  # reported per fold
    assert best["best"]["trial"] == 0


def test_missing_optuna_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = runner.invoke(
        app,
        ["tune", "--train", "x.csv", "--target", "y", "--output", str(tmp_path / "o")],
    )
    assert result.exit_code == 2
    assert 'pip install "mlxbert-kaggle[tune]"' in result.output
    assert not (tmp_path / "o").exists()
