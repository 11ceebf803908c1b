"""The commands around reports: `mlxbert report`, the report and `--log-to tensorboard` of
`mlxbert train`, `mlxbert explain`; clean one-line errors; trackers as optional extras."""

from __future__ import annotations

import mlxbert_core  # noqa: F401  isort: skip  (before mlx: the fast BLAS on Linux)

import importlib.util
import struct
import sys
import types
from pathlib import Path

import mlx.core as mx
import numpy as np
import pandas as pd
import pytest
from tensorboardX.proto import event_pb2
from typer.testing import CliRunner

from mlxbert_glue import Reporter, open_task_model
from mlxbert_glue.task_model import read_json
from mlxbert_kaggle.cli import app
from mlxbert_kaggle.cli.cmd_report import report_after_training
from mlxbert_kaggle.explain import core as explain_core
from mlxbert_kaggle.explain import explain
from mlxbert_kaggle.report import figures
from mlxbert_kaggle.trackers import MlflowTracker, TrackingReporter, WandbTracker

from .report_helpers import Report, png_size

HERE = Path(__file__).parent
TINY = str(HERE / "fixtures" / "tiny-bert")
WORDS = ["awful dull bad", "great fun good"]


def _csv(path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(1)
    cls = rng.integers(0, 2, n)
    pd.DataFrame(
        {"text": [f"{WORDS[c]} thing {i}" for i, c in enumerate(cls)], "label": cls}
    ).to_csv(path, index=False)
    return path


def _train(tmp: Path, out: Path, *extra: str):
    args = ["train", "--train", str(_csv(tmp / "train.csv")), "--target", "label", "--text"]
    args += ["text", "--model", TINY, "--epochs", "2", "--batch-size", "3", "--max-length"]
    args += ["24", "--output", str(out), *extra]
    return CliRunner().invoke(app, args)


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of TensorBoard event files (TFRecord framing, tensorboardX's protobuf)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "run"
    result = _train(tmp, out, "--log-to", "tensorboard")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_report_and_tensorboard_scalars(trained):
    out, output = trained
    assert f"report: {out / 'report.html'}" in output
    page = Report(out / "report.html")
    assert page.generator == "mlxbert report" and "learning_curves" in page.figures
    log = read_json(out / "_work" / "model" / "log.json")
    events = _events(out / "tensorboard" / "train")
    # 12 batches per epoch: the loss goes out every tenth. Per-epoch numbers are log.json's
    # (float32 in the event file), at epochs 1 and 2.
    loss = events["epoch/loss"]
    assert [s for s, _ in loss] == [1, 2]
    np.testing.assert_allclose([v for _, v in loss], [e["loss"] for e in log["epochs"]], rtol=1e-6)
    accuracy = [v for _, v in events["valid/accuracy"]]
    np.testing.assert_allclose(
        accuracy, [e["metrics"]["accuracy"] for e in log["epochs"]], rtol=1e-6
    )
    assert {"train/loss", "train/learning_rate", "epoch/train_seconds"} <= set(events)


def test_no_report_flag(tmp_path):
    result = _train(tmp_path, tmp_path / "run", "--epochs", "1", "--no-report")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "report.html").exists()
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_report_command_and_its_errors(trained, tmp_path):
    out, _ = trained
    runner = CliRunner()
    target = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(out), "--output", str(target)])
    assert result.exit_code == 0, result.output
    width, _ = png_size((tmp_path / "r-figures" / "learning_curves.png").read_bytes())
    assert width > 200
    for args, message in [
        (["report", str(tmp_path / "nope")], "does not exist"),
        (["report", str(tmp_path)], "no finished run"),
        (["report", str(out), "--output", str(tmp_path / "r.pdf")], "HTML"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_without_matplotlib(trained, monkeypatch, capsys):
    out, _ = trained
    real = figures.importlib.import_module

    def no_matplotlib(name, *args):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(figures.importlib, "import_module", no_matplotlib)
    result = CliRunner().invoke(app, ["report", str(out), "--output", str(out / "x.html")])
    assert result.exit_code == 2 and "mlxbert-kaggle[report]" in result.output
    report_after_training(out, True)  # after training: a note, never an error
    assert "no report written" in capsys.readouterr().out


def test_explain_command(trained, tmp_path):
    out, _ = trained
    runner = CliRunner()
    for method in ("rollout", "gradient"):
        png = tmp_path / f"{method}.png"
        args = ["explain", "--model", str(out / "model"), "great fun good day", "--method", method]
        result = runner.invoke(app, [*args, "--layer", "1", "--head", "0", "--output", str(png)])
        assert result.exit_code == 0, result.output
        assert "prediction:" in result.output and "great" in result.output
        width, height = png_size(png.read_bytes())
        assert width > 300 and height > 300
    result = runner.invoke(app, ["explain", "--model", str(out / "model"), "x", "--layer", "9"])
    assert result.exit_code == 2 and "layers" in result.output
    result = runner.invoke(
        app,
        ["explain", "--model", str(out / "model"), "x", "--output", str(tmp_path / "rollout.png")],
    )
    assert result.exit_code == 2 and "exists" in result.output


def test_explain_without_attention(trained, monkeypatch, tmp_path):
    """An encoder that returns no attention (as M2-BERT's) has no map or rollout, and says so;
    gradient x input still works."""
    out, _ = trained
    monkeypatch.setattr(explain_core, "attention_maps", lambda encoder, inputs: None)
    runner = CliRunner()
    result = runner.invoke(app, ["explain", "--model", str(out / "model"), "good fun"])
    assert result.exit_code == 2 and "no attention probabilities" in result.output
    png = tmp_path / "g.png"
    args = ["explain", "--model", str(out / "model"), "good fun", "--method", "gradient"]
    result = runner.invoke(app, [*args, "--output", str(png)])
    assert result.exit_code == 0 and "no attention probabilities" in result.output
    png_size(png.read_bytes())


def test_gradient_x_input_matches_finite_differences(trained):
    """importance_t = |dy/de_t . e_t|: scaling token t's embedding row by (1 + eps) moves the
    explained output by eps * (dy/de_t . e_t)."""
    out, _ = trained
    text = "great fun good day"
    result = explain(out / "model", text, method="gradient")
    model, tokenizer, _ = open_task_model(out / "model")
    enc = {k: v.astype(mx.int32) for k, v in tokenizer([text], return_tensors="mx").items()}
    table = model.encoder.embeddings.word_embeddings
    ids = np.array(enc["input_ids"])[0]
    raw = []
    eps = 1e-2
    for token in ids:
        if list(ids).count(token) != 1:
            raw.append(None)
            continue
        original = table.weight
        values = []
        for sign in (1, -1):
            table.weight = original.at[int(token)].multiply(1 + sign * eps)
            values.append(float(np.array(model(**enc)).reshape(-1)[result.output]))
        table.weight = original
        raw.append(abs(values[0] - values[1]) / (2 * eps))
    known = [(i, r) for i, r in enumerate(raw) if r is not None]
    scale = sum(r for _, r in known) / sum(result.importance[i] for i, _ in known)
    for i, r in known:
        assert result.importance[i] * scale == pytest.approx(r, rel=2e-2, abs=1e-4)


def test_wandb_and_mlflow_trackers_get_the_scalars(tmp_path, monkeypatch):
    calls = []

    class Run:
        def define_metric(self, name, step_metric=None):
            calls.append(("define", name, step_metric))

        def log(self, values):
            calls.append(("wandb", values))

        def finish(self):
            calls.append(("finish",))

    wandb = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw)) or Run())
    mlflow = types.SimpleNamespace(
        start_run=lambda run_name: calls.append(("start", run_name)),
        log_params=lambda p: calls.append(("params", p)),
        log_metrics=lambda m, step: calls.append(("mlflow", m, step)),
        end_run=lambda: calls.append(("end",)),
    )
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    reporter = TrackingReporter(
        Reporter(),
        [WandbTracker(tmp_path, "demo", {"lr": 1e-3}), MlflowTracker("demo", {"a": {"b": 1}})],
    )
    reporter.scalars(10, {"train/loss": 0.5}, kind="step", run="fold 1/2")
    reporter.scalars(1, {"epoch/loss": 0.4, "valid/f1": 0.8}, kind="epoch", run="fold 1/2")
    reporter.close()
    assert ("wandb", {"fold-1-2/step": 10, "fold-1-2/train/loss": 0.5}) in calls
    assert ("define", "fold-1-2/valid/*", "fold-1-2/epoch") in calls
    assert ("mlflow", {"fold-1-2/epoch/loss": 0.4, "fold-1-2/valid/f1": 0.8}, 1) in calls
    assert ("params", {"a.b": 1}) in calls and ("finish",) in calls and ("end",) in calls


def test_unknown_or_missing_tracker_is_a_clean_error(tmp_path, monkeypatch):
    result = _train(tmp_path, tmp_path / "a", "--log-to", "nope")
    assert result.exit_code == 2 and "tensorboard, wandb or mlflow" in result.output
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    result = _train(tmp_path, tmp_path / "b", "--log-to", "wandb")
    assert result.exit_code == 2 and "mlxbert-kaggle[wandb]" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_failing_report_is_a_note_after_training(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{not json")  # a damaged run folder
    report_after_training(tmp_path, True)
    assert "no report written" in capsys.readouterr().out
    report_after_training(tmp_path, False)  # --no-report: nothing at all
    assert capsys.readouterr().out == ""
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "cannot be read" in result.output
    assert "Traceback" not in result.output
