"""GLUE metrics equal scikit-learn / scipy; the GLUE score follows the leaderboard rule;
submission files have the benchmark's layout."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from mlxbert_glue import TASKS, compute_metrics, glue_score, load_task, write_submission
from mlxbert_glue.metrics import predictions_from_logits, task_score

REFERENCE = {
    "accuracy": accuracy_score,
    "f1": f1_score,
    "matthews_corrcoef": matthews_corrcoef,
    "pearson": lambda y, p: pearsonr(y, p)[0],
    "spearman": lambda y, p: spearmanr(y, p)[0],
}


@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli"])
def test_metrics_equal_sklearn_scipy_on_real_dev_labels(glue_dir, tmp_path, task):
    t = TASKS[task]
    dev = load_task(task, glue_dir, "dev")
    rng = np.random.default_rng(0)
    if t.is_regression:
        logits = (dev.labels + rng.normal(0, 1.5, len(dev))).astype(np.float32)[:, None]
    else:
        # Noisy but informative logits: right class favoured 70% of the time.
        logits = rng.normal(size=(len(dev), t.num_labels)).astype(np.float32)
        logits[np.arange(len(dev)), dev.labels] += rng.random(len(dev)) < 0.7
    # Round-trip the predictions through a file, as a saved prediction set.
    np.save(tmp_path / "logits.npy", logits)
    preds = predictions_from_logits(t, np.load(tmp_path / "logits.npy"))
    ours = compute_metrics(t, preds, dev.labels)
    assert list(ours) == list(t.metrics)
    for name, value in ours.items():
        assert value == pytest.approx(REFERENCE[name](dev.labels, preds), abs=1e-12), name


def test_metric_edge_cases():
    # MCC of a constant prediction is 0 (scikit-learn's convention), not NaN.
    y = np.array([0, 1, 1, 0, 1])
    assert compute_metrics("cola", np.ones(5, int), y)["matthews_corrcoef"] == 0.0
    assert compute_metrics("mrpc", y, y) == {"f1": 1.0, "accuracy": 1.0}
    with pytest.raises(ValueError, match="predictions for"):
        compute_metrics("sst2", np.ones(3, int), y)
    # A one-logit binary output is thresholded at zero.
    assert predictions_from_logits("sst2", np.array([[-1.0], [2.0]])).tolist() == [0, 1]


def test_glue_score_matches_the_leaderboard_rule():
    # BERT-large's published GLUE test numbers; the leaderboard shows a score of 80.5.
    results = {
        "cola": {"matthews_corrcoef": 0.605},
        "sst2": {"accuracy": 0.949},
        "mrpc": {"f1": 0.893, "accuracy": 0.854},
        "stsb": {"pearson": 0.876, "spearman": 0.865},
        "qqp": {"f1": 0.721, "accuracy": 0.893},
        "mnli": {"accuracy_m": 0.867, "accuracy_mm": 0.859},
        "qnli": {"accuracy": 0.927},
        "rte": {"accuracy": 0.701},
        "wnli": {"accuracy": 0.651},
    }
    score = glue_score(results)
    assert score["complete"] and not score["missing"]
    assert round(100 * score["score"], 1) == 80.5
    assert score["task_scores"]["mnli"] == pytest.approx(0.863)
    partial = glue_score({"rte": {"accuracy": 0.7}, "SST-2": {"accuracy": 0.9}})
    assert partial["score"] == pytest.approx(0.8) and not partial["complete"]
    assert "mnli" in partial["missing"]
    with pytest.raises(KeyError, match="missing"):
        task_score("mrpc", {"f1": 0.9})


def test_submission_files(tmp_path):
    ids = ["0", "1", "2"]
    path = write_submission("rte", ids, np.array([0, 1, 1]), tmp_path)
    assert path.name == "RTE.tsv"
    assert (
        path.read_text()
        == "index\tprediction\n0\tentailment\n1\tnot_entailment\n2\tnot_entailment\n"
    )
    path = write_submission("stsb", ids, np.array([-0.4, 2.51234, 7.0]), tmp_path)
    assert path.read_text().splitlines()[1:] == ["0\t0.000", "1\t2.512", "2\t5.000"]
    names = {
        write_submission(t, ["0"], np.zeros(1), tmp_path, split).name
        for t, split in [("cola", "test"), ("sst2", "test"), ("mrpc", "test"), ("qqp", "test"),
                         ("qnli", "test"), ("wnli", "test"), ("mnli", "test"),
                         ("mnli", "test_mismatched"), ("mnli", "diagnostic")]
    }  # fmt: skip
    assert names == {"CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "QQP.tsv", "QNLI.tsv", "WNLI.tsv",
                     "MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"}  # fmt: skip
    assert (tmp_path / "MNLI-m.tsv").read_text().splitlines()[1] == "0\tcontradiction"
    with pytest.raises(ValueError, match="class ids"):
        write_submission("rte", ["0"], np.array([2]), tmp_path)
    with pytest.raises(ValueError, match="no submission file"):
        write_submission("rte", ["0"], np.array([0]), tmp_path, "dev")
