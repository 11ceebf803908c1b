"""Classifier on heads of every kind, through saved folders (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from mlxbert_glue import Classifier, create_model_and_tokenizer, read_meta, save_task_model

from .conftest import TINY_BERT


def _save(tmp_path, task, **kwargs):
    model, tokenizer, _info = create_model_and_tokenizer(TINY_BERT, task, **kwargs)
    return model, save_task_model(model, tokenizer, tmp_path / task, max_length=32)


def test_binary_head_uses_its_threshold_and_probabilities(tmp_path):
    _model, folder = _save(tmp_path, "binary", labels=["ham", "spam"])
    clf = Classifier.from_pretrained(folder)
    out = clf.classify("win money now")
    assert set(out["scores"]) == {"ham", "spam"}
    assert sum(out["scores"].values()) == pytest.approx(1.0)
    assert out["label"] == ("spam" if out["scores"]["spam"] >= 0.5 else "ham")
    assert read_meta(folder)["hf_compatible"] is True


def test_regression_head_reports_values_in_original_units(tmp_path):
    model, tokenizer, _info = create_model_and_tokenizer(TINY_BERT, "regression")
    model.head.fit_scaler(np.array([100.0, 300.0, 500.0]))
    folder = save_task_model(model, tokenizer, tmp_path / "reg", max_length=32)
    clf = Classifier.from_pretrained(folder)
    value = clf.classify("a house with a garden")["value"]
    # Untrained output is near 0 in standardised units, i.e. near the mean in original ones.
    assert 0 < value < 1000


def test_multiclass_and_batch_inputs(tmp_path):
    _, folder = _save(tmp_path, "multiclass", labels=["a", "b", "c"])
    clf = Classifier.from_pretrained(folder)
    results = clf.classify_batch(["one", "two", "three"])
    assert [set(r["scores"]) for r in results] == [{"a", "b", "c"}] * 3
    pairs = clf.classify_batch([("x", "y"), ("p", "q")])
    assert len(pairs) == 2
    with pytest.raises(ValueError, match="either all single texts or all"):
        clf.classify_batch(["x", ("a", "b")])
    assert clf.classify_batch([]) == []


def test_incomplete_folder_has_a_clear_error(tmp_path):
    _, folder = _save(tmp_path, "sst2")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing tokenizer\.json"):
        Classifier.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Classifier.from_pretrained(tmp_path / "nowhere")
