"""Adversarial validation (train vs test AUC, the most test-like rows) and prediction of
texts longer than the model's maximum length (head, head + tail, windows, TTA)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_glue import predict_logits
from mlxbert_kaggle import InputError, TablePredictor, load_model, train_table
from mlxbert_kaggle.adversarial import adversarial_validation
from mlxbert_kaggle.cli import app
from mlxbert_kaggle.long_text import long_text_features, long_text_raw
from mlxbert_kaggle.training import predict_raw

from .power_helpers import fast_config

runner = CliRunner()


def test_adv_validate_on_real_tweets_finds_no_shift_and_a_planted_one(tmp_path, kaggle_data):
    root = kaggle_data / "nlp-getting-started"
    # random rows of each (both files are sorted by keyword: their first rows differ)
    train = pd.read_csv(root / "train.csv").sample(300, random_state=0).reset_index(drop=True)
    test = pd.read_csv(root / "test.csv").sample(300, random_state=0).reset_index(drop=True)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    args = ["adv-validate", "--train", str(tmp_path / "train.csv"), "--test"]
    result = runner.invoke(
        app,
        [*args, str(tmp_path / "test.csv"), "--text", "text", "--target", "target",
         "--id-col", "id", "--output", str(tmp_path / "same")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    same = json.loads((tmp_path / "same" / "adversarial.json").read_text())
    assert 0.35 < same["auc"] < 0.65 and same["verdict"].startswith("no meaningful shift")
    # test rows that all mention one word: a strong shift, and the training rows that
    # mention it are the most test-like
    shifted = test.assign(text=test["text"] + " wildfire")
    planted = train.index < 10
    train.loc[planted, "text"] = train.loc[planted, "text"] + " wildfire"
    result = adversarial_validation(
        train, shifted, output=tmp_path / "shift", text=["text"], target=["target"], id_col="id"
    )
    assert result["auc"] > 0.9 and "wildfire" in result["test_like_words"][:3]
    rows = pd.read_csv(tmp_path / "shift" / "train_rows.csv")
    ids = set(train.loc[planted, "id"])
    assert ids <= set(rows["id"].head(20)) and len(ids & set(rows["id"].head(10))) >= 7
    assert rows["p_test"].is_monotonic_decreasing


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("long")
    words = ["calm quiet", "storm fire"]
    frame = pd.DataFrame(
        {"text": [f"{words[i % 2]} {i}" for i in range(16)], "y": [i % 2 for i in range(16)]}
    )
    train_table(frame, target="y", text=["text"], output=out, config=fast_config(max_length=12))
    return out / "model"


def test_long_text_modes_work_on_token_ids(model_dir):
    m = load_model(model_dir)
    tok = m.tokenizer
    text = " ".join(f"w{i}" for i in range(40))
    content = tok([text], truncation=False, padding=False, return_tensors=None,
                  add_special_tokens=False)["input_ids"][0]  # fmt: skip
    cls, sep = tok([""], return_tensors=None)["input_ids"][0]
    budget = 12 - 2
    head, _ = long_text_features(tok, [text], max_length=12, mode="head")
    assert head["input_ids"] == [[cls, *content[:budget], sep]]
    both, _ = long_text_features(tok, [text], max_length=12, mode="head-tail")
    assert both["input_ids"] == [
        [cls, *content[: budget // 4], *content[-(budget - budget // 4) :], sep]
    ]
    windows, owner = long_text_features(tok, [text, "short"], max_length=12, mode="windows")
    spans = [w[1:-1] for w, o in zip(windows["input_ids"], owner) if o == 0]
    assert all(len(s) == budget for s in spans) and spans[0] == content[:budget]
    assert spans[-1] == content[-budget:]  # the last window ends at the text's end
    covered = [t for s in spans for t in s]
    assert set(content) <= set(covered) and list(owner).count(1) == 1


def test_long_text_predictions_pool_windows_and_equal_plain_for_short_texts(model_dir, tmp_path):
    m = load_model(model_dir)
    short = ["storm fire 3", "calm quiet 4"]
    plain = predict_raw(m.model, m.tokenizer, short, task="binary", max_length=12)
    for mode in ("head", "head-tail", "windows"):
        got = long_text_raw(m.model, m.tokenizer, short, task="binary", max_length=12, mode=mode)
        np.testing.assert_allclose(got, plain, atol=1e-6)
    long = " ".join(["storm fire"] * 20 + ["calm quiet"] * 20)
    feats, _ = long_text_features(m.tokenizer, [long], max_length=12, mode="windows")
    # one window at a time: the pooled prediction is the sigmoid of the windows' mean logit
    logits = [
        predict_logits(m.model, {"input_ids": [ids], "token_type_ids": [[0] * len(ids)]})[0, 0]
        for ids in feats["input_ids"]
    ]
    assert len(logits) > 2
    pooled = long_text_raw(
        m.model, m.tokenizer, [long], task="binary", max_length=12, mode="windows"
    )
    np.testing.assert_allclose(pooled, m.model.head.predict_proba(np.mean(logits)), atol=1e-5)
    tta = long_text_raw(m.model, m.tokenizer, [long], task="binary", max_length=12, mode="windows", tta=True)  # fmt: skip
    plain_long = predict_raw(m.model, m.tokenizer, [long], task="binary", max_length=12)
    np.testing.assert_allclose(tta, (pooled + plain_long) / 2, atol=1e-6)
    # the same through the Python API and the CLI
    frame = pd.DataFrame({"text": [long, *short]})
    api = TablePredictor([model_dir]).predict_raw(frame, long_text="windows", tta=True)
    np.testing.assert_allclose(api[0], tta[0], atol=1e-6)
    frame.to_csv(tmp_path / "in.csv", index=False)
    args = ["predict", "--model", str(model_dir), "--input", str(tmp_path / "in.csv"), "--proba"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "o.csv"), "--long-text", "windows", "--tta"])  # fmt: skip
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(pd.read_csv(tmp_path / "o.csv")["proba_1"][0], tta[0], atol=1e-5)
    with pytest.raises(InputError, match="--tta"):
        TablePredictor([model_dir]).predict_raw(frame, tta=True)
    bad = runner.invoke(app, [*args, "--output", str(tmp_path / "x.csv"), "--long-text", "middle"])
    assert bad.exit_code == 2 and "head-tail" in bad.output and not (tmp_path / "x.csv").exists()
