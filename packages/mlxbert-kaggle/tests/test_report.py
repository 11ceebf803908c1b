"""Reports of small real runs (a tiny random BERT): every section is drawn from the run's
files, the files are valid HTML / PNG, and the numbers shown equal the run's metrics files."""

from __future__ import annotations

import json
import shutil
import stat

import numpy as np
import pandas as pd
import pytest

from mlxbert_glue.task_model import read_json
from mlxbert_kaggle import InputError, cross_validate, fit
from mlxbert_kaggle.report import load_run, write_report
from mlxbert_kaggle.report.write import MANIFEST

from .report_helpers import Report, png_size
from .test_thresholds_timeseries import sales

WORDS = {0: "awful dull bad", 1: "great fun good", 2: "odd plain flat"}
FAST = dict(epochs=2, batch_size=16, max_length=32, compile=False)


def _table(n: int = 48, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 3, n)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "text": [f"{WORDS[c]} item {i}" for i, c in enumerate(cls)],
            "binary": (cls == 1).astype(int),
            "klass": [["neg", "pos", "mid"][c] for c in cls],
            "tags": [["a|b", "b", "c|a"][c] for c in cls],
            "price": np.exp(rng.normal(11, 0.3, n)).round(0),
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
    """Four small runs: binary CV, multiclass hold-out, log1p regression CV, multilabel."""
    tiny = str(request.path.parent / "fixtures" / "tiny-bert")
    root = tmp_path_factory.mktemp("runs")
    df = _table()
    common = dict(text=["text"], id_col="id", model=tiny, **FAST)
    cross_validate(df, target="binary", output=root / "binary", folds=2, **common)
    fit(df, target="klass", output=root / "multiclass", **common)
    common["epochs"] = 1  # the sections below need no learning curve
    cross_validate(
        df, target="price", target_transform="log1p", output=root / "regression", folds=2, **common
    )
    fit(df, target="tags", label_sep="|", output=root / "multilabel", **common)
    return root


def _check_files(files) -> Report:
    assert files.html.is_file() and files.html.stat().st_size > 0
    page = Report(files.html)
    assert page.generator == "mlxbert report"
    manifest = json.loads(
        (files.html.with_name(f"{files.html.stem}-figures") / MANIFEST).read_text()
    )
    assert set(manifest["figures"]) == set(files.figures) == set(page.figures)
    for name, path in files.figures.items():
        data = path.read_bytes()
        width, height = png_size(data)
        assert width > 200 and height > 150
        assert page.figures[name] == data  # the page embeds exactly the PNG written
    return page


def _close(a: float, b: float) -> bool:
    # Regression targets are float32 in training: 1e-6 relative covers their rounding.
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def test_cv_binary_report(runs):
    run = runs / "binary"
    files = write_report(run)
    page = _check_files(files)
    assert {
        "learning_curves",
        "fold_scores",
        "confusion_matrix",
        "per_class",
        "reliability",
    } <= set(files.figures)
    metrics = read_json(run / "metrics.json")
    shown = {r["metric"]: r["value"] for r in page.rows("metrics")}
    assert shown == metrics["cv"]
    # Fold scores: each fold's best-epoch metrics, then the mean and spread.
    parts = page.rows("parts")
    for row, fold in zip(parts, metrics["folds"]):
        assert row["fit"] == f"fold {fold['fold']}" and row["best epoch"] == fold["best_epoch"]
        assert all(row[k] == v for k, v in fold["metrics"].items())
    assert all(parts[-2][k] == v for k, v in metrics["fold_mean"].items())
    assert all(parts[-1][k] == v for k, v in metrics["fold_std"].items())
    # Learning curves: every epoch of every fold's log.json.
    epochs = page.rows("epochs")
    logged = [
        (f"fold {k}", e)
        for k in (1, 2)
        for e in read_json(run / "_work" / f"fold-{k}" / "log.json")["epochs"]
    ]
    assert len(epochs) == len(logged) == 4
    for row, (name, entry) in zip(epochs, logged):
        assert row["fit"] == name and row["epoch"] == entry["epoch"]
        assert row["loss"] == entry["loss"] and row["accuracy"] == entry["score"]
        assert row["train s"] == entry["train_seconds"]
    # The confusion matrix counts oof.csv's decisions; its accuracy, precision, recall and F1
    # equal metrics.json's.
    oof = pd.read_csv(run / "oof.csv")
    cm = [[r["0"], r["1"]] for r in page.rows("confusion")]
    for t in (0, 1):
        for p in (0, 1):
            assert cm[t][p] == ((oof["binary"] == t) & (oof["pred_binary"] == p)).sum()
    agreement = page.rows("agreement")
    assert {r["metric"] for r in agreement} == {"accuracy", "precision", "recall", "f1"}
    for row in agreement:
        assert _close(row["counted from these predictions"], metrics["cv"][row["metric"]])
    per_class = {r["class"]: r for r in page.rows("per_class")}
    assert _close(per_class["1"]["F1"], metrics["cv"]["f1"])
    # Calibration: the run did not calibrate, so the second curve is fitted by the report
    # and says so.
    names = [r["probabilities"] for r in page.rows("calibration")]
    assert names[0].startswith("before calibration") and "fitted here" in names[1]
    errors = page.rows("errors")
    assert 0 < len(errors) <= 10
    confidences = [r["confidence"] for r in errors]
    assert confidences == sorted(confidences, reverse=True)
    by_id = oof.set_index("id")
    texts = dict(zip(_table()["id"], _table()["text"]))
    for row in errors:
        truth, pred = by_id.loc[row["id"], "binary"], by_id.loc[row["id"], "pred_binary"]
        assert truth != pred and str(truth) == row["true"]
        assert row["text"] == texts[row["id"]]
    settings = {r["setting"]: r["value"] for r in page.rows("settings")}
    assert settings["config.epochs"] == 2 and settings["folds"] == 2
    timings = {r["timing"]: r["value"] for r in page.rows("timings")}
    assert timings["total seconds"] == metrics["seconds"]


def test_threshold_and_run_calibration_are_shown_when_fitted(runs, tmp_path):
    """A run whose fold models carry a fitted threshold and temperature (as a calibrated run
    saves them in mlxbert.json) gets the threshold curve and the run's own calibration."""
    run = tmp_path / "calibrated"
    shutil.copytree(runs / "binary", run)
    for k, (t, temperature) in enumerate([(0.41, 1.7), (0.47, 1.3)], start=1):
        path = run / f"fold-{k}" / "mlxbert.json"
        meta = json.loads(path.read_text())
        meta["head"]["fitted"] |= {"threshold": t, "temperature": temperature}
        path.write_text(json.dumps(meta))
    files = write_report(run)
    page = _check_files(files)
    assert "threshold" in files.figures
    assert {r["fit"]: r["fitted threshold"] for r in page.rows("thresholds")} == {
        "fold 1": 0.41,
        "fold 2": 0.47,
    }
    names = [r["probabilities"] for r in page.rows("calibration")]
    assert names[1] == "after the run's temperature scaling"


def test_multiclass_holdout_report(runs):
    run = runs / "multiclass"
    page = _check_files(write_report(run))
    metrics = read_json(run / "metrics.json")
    valid = pd.read_csv(run / "valid_predictions.csv")
    labels = [r["true \\ predicted"] for r in page.rows("confusion")]
    assert sorted(labels) == sorted(set(_table()["klass"]))
    total = sum(r[c] for r in page.rows("confusion") for c in labels)
    assert total == len(valid)
    (accuracy,) = page.rows("agreement")
    assert _close(accuracy["counted from these predictions"], metrics["metrics"]["accuracy"])
    assert "parts" not in page.tables  # a hold-out run has no folds
    assert len(page.rows("epochs")) == 2


def test_regression_report(runs):
    run = runs / "regression"
    files = write_report(run)
    page = _check_files(files)
    assert "regression" in files.figures and "confusion_matrix" not in files.figures
    metrics = read_json(run / "metrics.json")
    agreement = {r["metric"]: r for r in page.rows("agreement")}
    assert {"rmsle", "rmse", "mae", "r2"} <= set(agreement)
    for name, row in agreement.items():
        assert row["metrics.json (cv)"] == metrics["cv"][name]
        assert _close(row["counted from these predictions"], metrics["cv"][name])
    errors = page.rows("errors")
    sizes = [abs(r["error"]) for r in errors]
    assert sizes == sorted(sizes, reverse=True) and len(errors) == 10
    assert "calibration" not in page.tables


def test_multilabel_report(runs):
    page = _check_files(write_report(runs / "multilabel"))
    assert {r["class"] for r in page.rows("per_class")} == {"a", "b", "c"}
    assert "confusion" not in page.tables and "calibration" in page.tables


def test_summary_reads_both_kinds_of_prediction_order(runs):
    """Texts and head outputs kept per fold are put back in oof.csv's row order."""
    summary = load_run(runs / "binary")
    pred = summary.predictions
    oof = pd.read_csv(runs / "binary" / "oof.csv")
    texts = dict(zip(_table()["id"], _table()["text"]))
    assert pred.texts == [texts[i] for i in oof["id"]]
    # The run's probabilities are its saved heads' on the kept outputs (temperature 1).
    p = 1 / (1 + np.exp(-pred.logits))
    np.testing.assert_allclose(p, oof["proba_1"], atol=1e-6)


def test_output_rules(runs, tmp_path):
    run = runs / "multiclass"
    with pytest.raises(InputError, match="HTML"):
        write_report(run, tmp_path / "r.txt")
    mine = tmp_path / "mine.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(InputError, match="not an mlxbert report"):
        write_report(run, mine)
    assert mine.read_text() == "<html>my notes</html>"
    files = write_report(run, mine, overwrite=True)
    again = write_report(run, mine)  # a report replaces an earlier report of its own
    assert again.html == files.html
    assert stat.S_IMODE(mine.stat().st_mode) & 0o044 == 0o044  # the umask's mode, not 0600
    with pytest.raises(InputError, match="no finished run"):
        write_report(tmp_path)


def test_forecasting_report(tmp_path, request):
    run = tmp_path / "ts"
    fit(
        sales(),
        target="sales",
        task="timeseries",
        time_col="date",
        group_col="shop",
        horizon=2,
        history=3,
        text=["notes"],
        output=run,
        model=str(request.path.parent / "fixtures" / "tiny-bert"),
        valid_fraction=0.2,
        epochs=1,
        batch_size=16,
        max_length=24,
    )
    files = write_report(run)
    page = _check_files(files)
    assert "regression" in files.figures
    metrics = read_json(run / "metrics.json")
    agreement = {r["metric"]: r for r in page.rows("agreement")}
    assert {"rmse", "mae"} <= set(agreement)
    for name, row in agreement.items():
        assert _close(row["counted from these predictions"], metrics["metrics"][name])
