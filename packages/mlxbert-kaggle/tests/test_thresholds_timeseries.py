"""Decision thresholds fitted in training and used in prediction; forecasting from a table."""

from __future__ import annotations

import mlxbert_core  # noqa: F401  isort: skip  (before mlx: the fast BLAS on Linux)

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_kaggle import InputError, TablePredictor, cross_validate, fit
from mlxbert_kaggle.cli import app

FAST = {"epochs": 2, "batch_size": 16, "max_length": 24, "lr": 3e-3}
WORDS = ["fire", "flood", "music", "storm", "food", "police"]


def topics(n=96, seed=0) -> pd.DataFrame:
    """Texts whose labels are the rare topic words they contain."""
    rng = np.random.default_rng(seed)
    filler = ["the day went by", "nothing much here", "a quiet street", "we went home"]
    rows = []
    for i in range(n):
        picked = [w for w in WORDS if rng.random() < (0.25 if w == "fire" else 0.08)]
        text = " ".join([filler[i % 4], *picked, str(i)])
        rows.append({"id": f"t{i}", "text": text, "tags": "|".join(picked)})
    return pd.DataFrame(rows)


def test_multilabel_thresholds_are_fitted_stored_and_used(tmp_path, tiny_bert):
    df = topics()
    run = fit(
        df,
        target="tags",
        label_sep="|",
        task="multilabel",
        text=["text"],
        output=tmp_path / "ml",
        model=tiny_bert,
        valid_fraction=0.25,
        **FAST,
    )
    metrics = json.loads((tmp_path / "ml" / "metrics.json").read_text())
    assert "f1_micro_at_0.5" in metrics["metrics"]  # the plain cut, reported beside
    threshold = metrics["threshold"]
    assert len(threshold) == len(WORDS) and all(0 < t < 1 for t in threshold)
    saved = json.loads((tmp_path / "ml" / "model" / "mlxbert.json").read_text())
    assert saved["head"]["fitted"]["thresholds"] == threshold
    assert saved["head"]["pos_weight"] and max(saved["head"]["pos_weight"]) > 1  # rare labels up
    raw = run.predict_raw(df)
    decided = run.predict(df)["tags"]
    labels = run.target.labels
    expected = ["|".join(np.asarray(labels)[row >= np.asarray(threshold)]) for row in raw]
    assert decided.fillna("").tolist() == expected
    # An explicit threshold overrides the fitted ones.
    forced = TablePredictor([tmp_path / "ml"])
    from mlxbert_kaggle.predicting import predict_frame

    everything, _ = predict_frame(forced.model_groups, df, threshold=0.0)
    assert everything["tags"].tolist() == ["|".join(labels)] * len(df)


def test_binary_cv_decides_each_fold_at_its_own_threshold(tmp_path, tiny_bert):
    df = topics(80).assign(
        label=lambda d: d["tags"].str.contains("fire").map({True: "y", False: "n"})
    )
    cross_validate(
        df.drop(columns="tags"),
        target="label",
        text=["text"],
        id_col="id",
        output=tmp_path / "cv",
        folds=2,
        model=tiny_bert,
        **FAST,
    )
    metrics = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    folds = [f["threshold"] for f in metrics["folds"]]
    assert all(isinstance(t, float) for t in folds) and isinstance(metrics["threshold"], float)
    oof = pd.read_csv(tmp_path / "cv" / "oof.csv")
    cut = np.asarray(folds)[oof["fold"].to_numpy() - 1]
    assert (oof["pred_label"] == np.where(oof["proba_y"] >= cut, "y", "n")).all()
    assert f"{metrics['metric']}_at_0.5" in metrics["cv"]


def sales(days=60) -> pd.DataFrame:
    """Two shops' daily sales, driven by the weather the notes describe."""
    rng = np.random.default_rng(1)
    effect = {"sunny and hot": 1.5, "grey and cool": 0.9, "rain all day": 0.5}
    rows = []
    for shop, base in (("harbour", 100.0), ("old town", 60.0)):
        for d in range(days):
            weather = list(effect)[rng.integers(3)]
            value = base * effect[weather] * rng.normal(1.0, 0.03)
            rows.append(
                {
                    "date": f"2024-01-{d + 1:03d}",
                    "shop": shop,
                    "notes": weather,
                    "sales": round(value, 2),
                }
            )
    return pd.DataFrame(rows)


def test_forecasting_trains_scores_and_predicts(tmp_path, tiny_bert):
    df = sales()
    run = fit(
        df,
        target="sales",
        task="timeseries",
        time_col="date",
        group_col="shop",
        horizon=2,
        history=3,
        text=["notes"],
        output=tmp_path / "ts",
        model=tiny_bert,
        valid_fraction=0.2,
        **FAST,
    )
    metrics = json.loads((tmp_path / "ts" / "metrics.json").read_text())
    assert metrics["metric"] == "mape"
    assert set(metrics["metrics"]) >= {"mape", "rmse", "mae", "directional_accuracy"}
    assert 0 <= metrics["metrics"]["directional_accuracy"] <= 1
    valid = pd.read_csv(tmp_path / "ts" / "valid_predictions.csv")
    assert list(valid.columns) == [
        "date",
        "shop",
        "true_sales_1",
        "true_sales_2",
        "sales_1",
        "sales_2",
    ]
    assert len(valid) == metrics["rows"]["valid"]
    future = df.copy()
    future.loc[future["date"] >= "2024-01-058", "sales"] = None  # rows still to forecast
    forecast = run.predict(future)
    assert list(forecast.columns) == ["date", "shop", "sales_1", "sales_2"]
    assert (
        len(forecast) == len(future) and np.isfinite(forecast[["sales_1", "sales_2"]]).all().all()
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 3}, "--valid-fraction"),
        ({"time_col": None}, "--time-col"),
        ({"horizon": 0}, "--horizon must be >= 1"),
    ],
)
def test_forecasting_bad_settings(tmp_path, tiny_bert, kwargs, message):
    args = dict(
        target="sales",
        task="timeseries",
        time_col="date",
        group_col="shop",
        text=["notes"],
        output=tmp_path / "ts",
        model=tiny_bert,
        **FAST,
    )
    with pytest.raises(InputError, match=message):
        if "folds" in kwargs:
            cross_validate(sales(), **{**args, **kwargs})
        else:
            fit(sales(), **{**args, **kwargs})
    assert not (tmp_path / "ts").exists()


def test_forecasting_needs_numeric_targets(tmp_path, tiny_bert):
    df = sales().astype({"sales": object})
    df.loc[5, "sales"] = "lots"
    with pytest.raises(InputError, match="must be numbers"):
        fit(
            df,
            target="sales",
            task="timeseries",
            time_col="date",
            text=["notes"],
            output=tmp_path / "ts",
            model=tiny_bert,
            **FAST,
        )


def test_forecasting_through_the_cli(tmp_path, tiny_bert):
    table = tmp_path / "sales.csv"
    sales(30).to_csv(table, index=False)
    run = tmp_path / "run"
    args = ["train", "--train", str(table), "--task", "timeseries", "--target", "sales"]
    args += ["--time-col", "date", "--group-col", "shop", "--horizon", "2", "--history", "3"]
    args += ["--text", "notes", "--model", tiny_bert, "--epochs", "1", "--max-length", "16"]
    result = CliRunner().invoke(app, [*args, "--no-report", "--output", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["metric"] == "mape"
    out = tmp_path / "forecast.csv"
    result = CliRunner().invoke(
        app, ["predict", "--model", str(run), "--input", str(table), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(out)
    assert list(forecast.columns) == ["date", "shop", "sales_1", "sales_2"] and len(forecast) == 60
    bad = CliRunner().invoke(app, [*args[:-4], "--horizon", "0", "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--horizon" in bad.output and not (tmp_path / "x").exists()
