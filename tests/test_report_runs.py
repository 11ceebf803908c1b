"""Reports of real runs end to end: `mlxbert glue finetune` on SST-2 (with TensorBoard
logging) and `mlxbert kaggle run house-prices`, each with a tiny random BERT; the report
written at the end shows the run's own numbers."""

import struct
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_glue.task_model import read_json
from mlxbert_kaggle.cli import app

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TINY = str(REPO / "packages" / "mlxbert-kaggle" / "tests" / "fixtures" / "tiny-bert")


def _tables(path: Path) -> dict[str, list[list[str]]]:
    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.row, self.cell = {}, None, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                self.table = self.tables.setdefault(a["data-table"], [])
            elif tag == "tr":
                self.row = []
                self.table.append(self.row)
            elif tag in ("td", "th"):
                self.cell = a.get("data-value") or ""

        def handle_data(self, data):
            if self.cell == "":
                self.cell = data

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.row.append(self.cell)
                self.cell = None

    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page.tables


def _agreement(path: Path) -> dict[str, tuple[float, float]]:
    _header, *rows = _tables(path)["agreement"]
    return {r[0]: (float(r[1]), float(r[2])) for r in rows}


@pytest.mark.skipif(not (SHARED / "glue").is_dir(), reason="GLUE files not found")
def test_glue_finetune_report_and_tensorboard(tmp_path):
    out = tmp_path / "sst2"
    args = ["glue", "finetune", "--task", "sst2", "--data-dir", str(SHARED / "glue")]
    args += ["--model", TINY, "--output", str(out), "--epochs", "2", "--seed", "1"]
    args += ["--max-train-samples", "64", "--max-length", "32", "--log-to", "tensorboard"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.html'}" in result.output
    assert (out / "report-figures" / "learning_curves.png").is_file()
    summary = read_json(out / "finetune.json")
    best = summary["runs"][0]["best"]["metrics"]
    counted, reference = _agreement(out / "report.html")["accuracy"]
    assert counted == pytest.approx(best["accuracy"], abs=1e-12) and reference == best["accuracy"]
    confusion = _tables(out / "report.html")["confusion"]
    assert sum(int(c) for row in confusion[1:] for c in row[1:]) == summary["dev_examples"] == 872
    dev = pd.read_csv(SHARED / "glue" / "SST-2" / "dev.tsv", sep="\t", quoting=3)
    errors = _tables(out / "report.html")["errors"][1:]
    sentences = {str(t).strip() for t in dev["sentence"]}
    assert errors and all(row[-1].strip() in sentences for row in errors)
    events = list((out / "tensorboard" / "sst2-seed-1").glob("events.out.tfevents.*"))
    assert events, result.output
    assert struct.unpack("<Q", events[0].read_bytes()[:8])[0] > 0


@pytest.mark.skipif(not (SHARED / "glue").is_dir(), reason="GLUE files not found")
def test_glue_regression_report(tmp_path):
    """STS-B: the report's Pearson and Spearman, counted from the kept dev outputs, are the
    best seed's in finetune.json."""
    out = tmp_path / "stsb"
    args = ["glue", "finetune", "--task", "stsb", "--data-dir", str(SHARED / "glue")]
    args += ["--model", TINY, "--output", str(out), "--epochs", "1", "--seed", "3"]
    args += ["--max-train-samples", "32", "--max-length", "32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    best = read_json(out / "finetune.json")["runs"][0]["best"]["metrics"]
    agreement = _agreement(out / "report.html")
    assert set(best) <= set(agreement)
    for name, value in best.items():
        assert agreement[name][1] == value
        assert agreement[name][0] == pytest.approx(value, abs=1e-9)
    assert (out / "report-figures" / "regression.png").is_file()


@pytest.mark.skipif(not (SHARED / "kaggle").is_dir(), reason="Kaggle files not found")
def test_kaggle_run_regression_report(tmp_path):
    out = tmp_path / "house"
    args = ["kaggle", "run", "house-prices", "--data-dir", str(SHARED / "kaggle")]
    args += ["--output", str(out), "--folds", "2", "--max-rows", "60", "--model", TINY]
    args += ["--epochs", "1", "--max-length", "32", "--batch-size", "16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = read_json(out / "metrics.json")
    agreement = _agreement(out / "report.html")
    assert {"rmsle", "rmse", "mae", "r2"} <= set(agreement)
    for name, (counted, reference) in agreement.items():
        assert reference == metrics["cv"][name]
        assert counted == pytest.approx(reference, rel=1e-6, abs=1e-6)  # float32 targets
    assert (out / "report-figures" / "regression.png").is_file()
