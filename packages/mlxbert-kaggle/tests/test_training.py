"""Training on small synthetic tables with a tiny random BERT: every task trains, saves a
complete model folder, and loads back for prediction."""

import json

import numpy as np
import pandas as pd
import pytest

from mlxbert_glue import Classifier
from mlxbert_kaggle import TablePredictor, fit

WORDS = {0: "awful dull bad", 1: "great fun good", 2: "odd plain flat"}


def table(n=48, seed=0):
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 3, n)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "text": [f"{WORDS[c]} item {i}" for i, c in enumerate(cls)],
            "size": rng.normal(10, 3, n).round(2),
            "binary": (cls == 1).astype(int),
            "klass": [["neg", "pos", "mid"][c] for c in cls],
            "tags": [["a|b", "b", "c|a"][c] for c in cls],
            "price": np.exp(rng.normal(11, 0.3, n)).round(0),
            "stars": cls + 1,
        }
    )


CASES = {
    "binary": dict(target="binary"),
    "multiclass": dict(target="klass"),
    "multilabel": dict(target="tags", label_sep="|"),
    "regression": dict(target="price", target_transform="log1p"),
    "ordinal": dict(target="stars", task="ordinal"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_task_trains_saves_and_predicts(tmp_path, tiny_bert, case):
    df = table()
    kwargs = CASES[case]
    out = tmp_path / case
    predictor = fit(
        df,
        output=out,
        text=["text"],
        features=["size"],
        id_col="id",
        model=tiny_bert,
        epochs=1,
        batch_size=16,
        max_length=32,
        compile=case == "binary",
        **kwargs,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "holdout" and metrics["finished"]
    assert np.isfinite(metrics["score"])
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "valid_predictions.csv").is_file()

    pred = predictor.predict(df.drop(columns=[kwargs["target"]]).head(6))
    assert list(pred.columns) == [kwargs["target"]]
    assert len(pred) == 6
    if case == "binary":
        assert set(pred["binary"]) <= {"0", "1"}
    if case == "multiclass":
        assert set(pred["klass"]) <= {"neg", "pos", "mid"}
    if case == "regression":
        assert (pred["price"] > 1000).all()  # expm1 of the log-scale predictions
    if case == "ordinal":
        assert set(pred["stars"]) <= {"1", "2", "3"}

    meta = json.loads((out / "model" / "mlxbert.json").read_text())
    assert meta["extra"]["kaggle"]["template"]["text_columns"] == ["text"]
    clf = Classifier.from_pretrained(out / "model")  # loads with nothing else
    result = clf.classify("size: 10 | text: great fun good item")
    assert ("value" in result) if case == "regression" else ("label" in result)


def test_api_cross_validate_and_raw_predictions(tmp_path, tiny_bert):
    from mlxbert_kaggle import cross_validate

    df = table(36)
    run = cross_validate(
        df,
        target="binary",
        output=tmp_path / "cv",
        folds=3,
        text=["text"],
        model=tiny_bert,
        epochs=1,
        batch_size=16,
        max_length=32,
        compile=False,
    )
    assert len(run.paths) == 3 and run.metrics["mode"] == "cv"
    oof = pd.read_csv(tmp_path / "cv" / "oof.csv")
    assert sorted(oof["fold"].unique()) == [1, 2, 3] and len(oof) == 36
    raw = run.predict_raw(df.head(5))
    assert raw.shape == (5,) and ((raw >= 0) & (raw <= 1)).all()
    single = TablePredictor([tmp_path / "cv" / "fold-1"]).predict_raw(df.head(5))
    assert not np.allclose(raw, single)  # the ensemble is not just one fold


@pytest.mark.parametrize("lora, quantize", [("balanced", None), ("qlora", 4), (None, 8)])
def test_lora_and_quantized_models_save_and_reload(tmp_path, tiny_bert, lora, quantize):
    df = table(32)
    predictor = fit(
        df,
        target="klass",
        output=tmp_path / "run",
        text=["text"],
        model=tiny_bert,
        epochs=1,
        batch_size=16,
        max_length=32,
        lora=lora,
        quantize=quantize,
    )
    meta = json.loads((tmp_path / "run" / "model" / "mlxbert.json").read_text())
    if lora:
        assert meta["adapter"]["merged"] is True
    if quantize and not lora:  # (QLoRA saves the merged float model)
        assert meta["quantization"] == {"bits": quantize} and meta["weights_layout"] == "mlxbert"
    raw = predictor.predict_raw(df.head(4))
    assert raw.shape == (4, 3) and np.allclose(raw.sum(axis=1), 1.0, atol=1e-5)
