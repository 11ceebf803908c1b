"""End to end on a tiny BERT: fine-tune, keep the best epoch, save, load, evaluate, classify,
resume after an interruption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlxbert_glue import Classifier, evaluate, finetune, load_task_model
from mlxbert_glue.tasks import TASKS

from .conftest import TINY_BERT

QUICK = {"batch_size": 32, "max_length": 32, "max_eval_samples": 48, "progress": False}


@pytest.mark.parametrize(("task", "lr"), [("sst2", 5e-3), ("stsb", 5e-3)])
def test_tiny_finetune_save_load_classify(glue_dir, tmp_path, task, lr):
    out = tmp_path / task
    summary = finetune(
        task, str(TINY_BERT), glue_dir, out,
        epochs=4, learning_rate=lr, seeds=[3], max_train_samples=128, **QUICK,
    )  # fmt: skip
    epochs = summary["runs"][0]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["loss"] < epochs[0]["loss"]  # it learns
    best = summary["runs"][0]["best"]
    assert best["score"] == max(e["score"] for e in epochs)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "mlxbert.json"):
        assert (out / name).is_file()
    log = json.loads((out / "runs" / "seed-3" / "log.json").read_text())
    assert log["finished"] and len(log["epochs"]) == 4
    assert json.loads((out / "finetune.json").read_text())["best_seed"] == 3

    # The saved model reproduces the best epoch's dev metrics.
    report = tmp_path / "reports" / f"{task}.json"
    result = evaluate(out, task, glue_dir, report=report, max_samples=48)
    for name, value in best["metrics"].items():
        assert result["metrics"][name] == pytest.approx(value, abs=1e-5)
    assert json.loads(report.read_text())["metrics"] == result["metrics"]
    assert "| **score** |" in report.with_suffix(".md").read_text()

    clf = Classifier.from_pretrained(out)
    if TASKS[task].is_regression:
        value = clf.classify_pair("A man is playing a guitar.", "A man plays the guitar.")
        assert set(value) == {"value"} and np.isfinite(value["value"])
    else:
        one = clf.classify("a gorgeous, witty, seductive movie .")
        assert one["label"] in ("negative", "positive")
        assert sum(one["scores"].values()) == pytest.approx(1.0)
        batch = clf.classify_batch(["a gorgeous movie .", "dull and lifeless ."])
        assert len(batch) == 2 and batch[0]["confidence"] >= 0.5


def test_resume_after_interruption_matches_uninterrupted_run(glue_dir, tmp_path, monkeypatch):
    from mlxbert_core.training import Trainer

    args = dict(epochs=2, learning_rate=3e-3, seeds=[5], max_train_samples=64, **QUICK)
    reference = finetune("sst2", str(TINY_BERT), glue_dir, tmp_path / "ref", **args)

    original = Trainer.train_epoch
    calls = {"n": 0}

    def interrupted(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption during epoch 2")
        return original(self, *a, **kw)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune("sst2", str(TINY_BERT), glue_dir, tmp_path / "run", **args)
    log = json.loads((tmp_path / "run" / "runs" / "seed-5" / "log.json").read_text())
    assert len(log["epochs"]) == 1 and not log.get("finished")
    monkeypatch.setattr(Trainer, "train_epoch", original)

    resumed = finetune("sst2", str(TINY_BERT), glue_dir, tmp_path / "run", **args)
    ref_epochs, res_epochs = reference["runs"][0]["epochs"], resumed["runs"][0]["epochs"]
    assert [e["epoch"] for e in res_epochs] == [1, 2]
    for a, b in zip(ref_epochs, res_epochs):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["metrics"] == pytest.approx(a["metrics"], abs=1e-6)
    # A finished run is not trained again.
    again = finetune("sst2", str(TINY_BERT), glue_dir, tmp_path / "run", **args)
    assert again["runs"][0]["epochs"] == res_epochs


def test_saved_folder_loads_alone(glue_dir, tmp_path):
    out = tmp_path / "m"
    finetune(
        "rte", str(TINY_BERT), glue_dir, out, epochs=1, seeds=[1], max_train_samples=32, **QUICK
    )
    _model, _tokenizer, meta = load_task_model(out)
    assert meta["task"] == "rte" and meta["labels"] == ["entailment", "not_entailment"]
    assert meta["hf_compatible"] is True
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}
    result = Classifier.from_pretrained(out).classify_pair("A cat sat.", "An animal sat.")
    assert result["label"] in ("entailment", "not_entailment")


def test_test_split_writes_submission(glue_dir, tmp_path):
    out = tmp_path / "m"
    finetune(
        "wnli", str(TINY_BERT), glue_dir, out, epochs=1, seeds=[1], max_train_samples=32, **QUICK
    )
    result = evaluate(out, "wnli", glue_dir, split="test", report=tmp_path / "wnli-test.json")
    (path,) = result["submission_files"]
    lines = (tmp_path / "WNLI.tsv").read_text().splitlines()
    assert path.endswith("WNLI.tsv") and lines[0] == "index\tprediction"
    assert len(lines) == 147 and {ln.split("\t")[1] for ln in lines[1:]} <= {"0", "1"}


def test_cli_command_functions(glue_dir, tmp_path):
    from mlxbert_glue.commands import glue_eval, glue_finetune

    lines: list[str] = []
    out = tmp_path / "cola"
    glue_finetune(
        "CoLA", glue_dir, str(TINY_BERT), out, epochs=1, batch_size=32, max_length=32,
        seeds=[1], max_train_samples=32, progress=False, echo=lines.append,
    )  # fmt: skip
    assert lines[-1].startswith("GLUE cola: matthews_corrcoef")
    result = glue_eval("cola", glue_dir, out, report=tmp_path / "r.json", echo=lines.append)
    assert result["num_examples"] == 1043 and "matthews_corrcoef" in result["metrics"]
    assert (tmp_path / "r.md").is_file()
    with pytest.raises(FileNotFoundError, match="MNLI"):
        glue_finetune("mnli", glue_dir, str(TINY_BERT), tmp_path / "x", echo=lines.append)
