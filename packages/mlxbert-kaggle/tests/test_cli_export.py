"""``mlxbert export``: a thin wrapper over ``mlxbert_glue.export_model`` — the files it writes
and its one-line errors (exit status 2, no traceback, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import mlxbert_core  # noqa: F401  isort: skip  (first: it loads OpenBLAS before mlx)

import numpy as np
import onnxruntime as ort
from typer.testing import CliRunner

from mlxbert_core import load_tokenizer
from mlxbert_glue import Classifier, create_task_model, save_task_model
from mlxbert_kaggle.cli import app

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny-bert"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_export_classifier_to_onnx_runs_in_onnxruntime(tmp_path):
    model, tokenizer, info = create_task_model(TINY, "multiclass", labels=["a", "b", "c"])
    folder = save_task_model(model, tokenizer, tmp_path / "model", info=info, max_length=32)
    result = invoke("export", "--model", folder, "--format", "onnx", "--output", tmp_path / "x")
    assert result.exit_code == 0, result.output
    assert "done: onnx export written" in result.output
    session = ort.InferenceSession(str(tmp_path / "x" / "model.onnx"))
    tok = load_tokenizer(tmp_path / "x")  # the tokenizer beside the graph
    enc = tok(["a first text", "and a second"], return_tensors="np")
    (logits,) = session.run(None, {i.name: enc[i.name] for i in session.get_inputs()})
    want = Classifier.from_pretrained(folder).logits(["a first text", "and a second"])
    assert np.abs(logits - want).max() <= 1e-4
    assert json.loads((tmp_path / "x" / "export.json").read_text())["labels"] == ["a", "b", "c"]


def test_export_encoder_as_mlxfn_and_hf(tmp_path):
    for fmt in ("mlxfn", "hf"):
        result = invoke("export", "--model", TINY, "--format", fmt, "--output", tmp_path / fmt)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "mlxfn" / "model.mlxfn").is_file()
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_export_errors_are_one_line(tmp_path):
    out = tmp_path / "out"
    assert_clean_error(
        invoke("export", "--model", TINY, "--format", "tflite", "--output", out),
        "unknown export format 'tflite'",
    )
    assert_clean_error(
        invoke("export", "--model", tmp_path / "nothing", "--format", "onnx", "--output", out),
        "cannot open model",
    )
    (tmp_path / "file").write_text("x")
    assert_clean_error(
        invoke("export", "--model", TINY, "--format", "onnx", "--output", tmp_path / "file" / "o"),
        "is not a folder",
    )
    out.mkdir()
    assert_clean_error(
        invoke("export", "--model", TINY, "--format", "onnx", "--output", out),
        "already exists",
        "--overwrite",
    )
    assert list(out.iterdir()) == []
    assert_clean_error(
        invoke("export", "--model", TINY, "--format", "hf", "--output", tmp_path / "h",
               "--pooling", "mean"),
        "apply to the onnx and mlxfn formats",
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]
