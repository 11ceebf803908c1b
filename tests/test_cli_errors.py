"""The `mlxbert` command line on bad input: a clear message, a non-zero exit status, no
traceback and no half-written output."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlxbert_kaggle.cli import app

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "packages" / "mlxbert-kaggle" / "tests" / "fixtures" / "tiny-bert")
FAST = ["--model", TINY, "--epochs", "1", "--max-length", "32", "--batch-size", "16"]
runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def table(n=40):
    words = ["good fun", "bad dull"]
    return pd.DataFrame(
        {
            "id": [f"x{i}" for i in range(n)],
            "text": [f"{words[i % 2]} {i}" for i in range(n)],
            "label": ["pos" if i % 2 == 0 else "neg" for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A hold-out run on a small CSV with 2 missing targets (trained once for the module)."""
    root = tmp_path_factory.mktemp("cli")
    df = table()
    df.loc[[3, 7], "label"] = None
    df.to_csv(root / "train.csv", index=False)
    result = invoke(
        "train",
        "--train",
        root / "train.csv",
        "--target",
        "label",
        "--text",
        "text",
        "--output",
        root / "run",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    return root, result


def assert_clean_error(result, *fragments, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_training_summary_and_dropped_targets(trained):
    root, result = trained
    assert "dropped 2 row(s) whose target is missing" in result.output
    assert "done: validation accuracy" in result.output
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert (
        metrics["dropped_target_rows"] == 2
        and metrics["rows"]["train"] + metrics["rows"]["valid"] == 38
    )


def test_missing_column_lists_available_ones(tmp_path):
    table().to_csv(tmp_path / "t.csv", index=False)
    result = invoke(
        "train",
        "--train",
        tmp_path / "t.csv",
        "--target",
        "Survived",
        "--output",
        tmp_path / "out",
        *FAST,
    )
    assert_clean_error(result, "no column 'Survived'", "available columns: 'id', 'text', 'label'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"text,label\n", "no data rows"), (b"text,label\n\xff\xfe,1\n", "UTF-8")],
)
def test_empty_and_non_utf8_files(tmp_path, content, message):
    (tmp_path / "t.csv").write_bytes(content)
    result = invoke(
        "train",
        "--train",
        tmp_path / "t.csv",
        "--target",
        "label",
        "--output",
        tmp_path / "out",
        *FAST,
    )
    assert_clean_error(result, message)
    assert not (tmp_path / "out").exists()


def test_unseen_validation_labels(tmp_path):
    table().to_csv(tmp_path / "t.csv", index=False)
    valid = table(6)
    valid.loc[0, "label"] = "meh"
    valid.to_csv(tmp_path / "v.csv", index=False)
    result = invoke(
        "train",
        "--train",
        tmp_path / "t.csv",
        "--valid",
        tmp_path / "v.csv",
        "--target",
        "label",
        "--text",
        "text",
        "--output",
        tmp_path / "out",
        *FAST,
    )
    assert_clean_error(result, "not seen in training: 'meh'")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_resume_or_overwrite(trained, tmp_path):
    root, _ = trained
    result = invoke(
        "train", "--train", root / "train.csv", "--target", "label", "--output", root / "run", *FAST
    )
    assert_clean_error(result, "--resume", "--overwrite")


def test_predict_duplicate_ids_writes_nothing(trained, tmp_path):
    root, _ = trained
    df = table(5)
    df.loc[4, "id"] = "x0"
    df.to_csv(tmp_path / "test.csv", index=False)
    result = invoke(
        "predict",
        "--model",
        root / "run",
        "--input",
        tmp_path / "test.csv",
        "--output",
        tmp_path / "pred.csv",
        "--id-col",
        "id",
    )
    assert_clean_error(result, "duplicated value(s): x0")
    assert list(tmp_path.iterdir()) == [tmp_path / "test.csv"]


def test_predict_with_sample_submission(trained, tmp_path):
    root, _ = trained
    table(6).drop(columns=["label"]).to_csv(tmp_path / "test.csv", index=False)
    sample = pd.DataFrame({"id": [f"x{i}" for i in (5, 4, 3, 2, 1, 0)], "label": "pos"})
    sample.to_csv(tmp_path / "sample.csv", index=False)
    result = invoke(
        "predict",
        "--model",
        root / "run",
        "--input",
        tmp_path / "test.csv",
        "--output",
        tmp_path / "sub.csv",
        "--sample-submission",
        tmp_path / "sample.csv",
    )
    assert result.exit_code == 0, result.output
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert list(sub.columns) == ["id", "label"] and sub["id"].tolist() == sample["id"].tolist()
    assert set(sub["label"]) <= {"pos", "neg"}
    sample.iloc[:3].to_csv(tmp_path / "short.csv", index=False)
    result = invoke(
        "predict",
        "--model",
        root / "run",
        "--input",
        tmp_path / "test.csv",
        "--output",
        tmp_path / "bad.csv",
        "--sample-submission",
        tmp_path / "short.csv",
    )
    assert_clean_error(result, "ids do not match the sample submission")
    assert not (tmp_path / "bad.csv").exists()


@pytest.mark.parametrize("missing", ["tokenizer.json", "mlxbert.json", "model.safetensors"])
def test_model_folder_missing_a_file(trained, tmp_path, missing):
    root, _ = trained
    broken = tmp_path / "model"
    shutil.copytree(root / "run" / "model", broken)
    (broken / missing).unlink()
    table(3).to_csv(tmp_path / "test.csv", index=False)
    result = invoke(
        "predict",
        "--model",
        broken,
        "--input",
        tmp_path / "test.csv",
        "--output",
        tmp_path / "pred.csv",
    )
    assert result.exit_code == 2, result.output
    assert missing in result.output or "not a model folder" in result.output
    assert not (tmp_path / "pred.csv").exists()


def test_predict_missing_template_column(trained, tmp_path):
    root, _ = trained
    table(3).drop(columns=["text"]).to_csv(tmp_path / "test.csv", index=False)
    result = invoke(
        "predict",
        "--model",
        root / "run",
        "--input",
        tmp_path / "test.csv",
        "--output",
        tmp_path / "pred.csv",
    )
    assert_clean_error(result, "no column 'text'", "available columns: 'id', 'label'")


def test_classify_and_embed_and_info(trained, tmp_path):
    root, _ = trained
    result = invoke("classify", "--model", root / "run" / "model", "good fun")
    assert result.exit_code == 0, result.output
    assert "pos" in result.output or "neg" in result.output
    result = invoke(
        "embed", "--model", TINY, "--text", "a", "--text", "b c", "--output", tmp_path / "e.npy"
    )
    assert result.exit_code == 0, result.output
    import numpy as np

    assert np.load(tmp_path / "e.npy").shape == (2, 64)
    result = invoke("info")
    assert result.exit_code == 0 and "blas" in result.output


def test_kaggle_submit_says_what_is_missing(tmp_path, monkeypatch):
    (tmp_path / "sub.csv").write_text("PassengerId,Survived\n892,0\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.delenv("KAGGLE_CONFIG_DIR", raising=False)
    result = invoke("kaggle", "submit", "titanic", "--file", tmp_path / "sub.csv")
    assert result.exit_code == 2
    assert "pip install kaggle" in result.output or "no Kaggle credentials" in result.output
    result = invoke("kaggle", "run", "nope", "--data-dir", tmp_path)
    assert_clean_error(result, "unknown preset 'nope'", "titanic")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["train"],
        ["predict"],
        ["kaggle", "run"],
        ["kaggle", "submit"],
        ["glue", "finetune"],
        ["glue", "eval"],
        ["embed"],
        ["classify"],
        ["info"],
    ],
)
def test_help_everywhere(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_precision_and_dtype_are_checked_before_work(trained, tmp_path):
    root, _ = trained
    table(4).to_csv(tmp_path / "test.csv", index=False)
    result = invoke(
        "train", "--train", tmp_path / "test.csv", "--target", "label", "--text", "text",
        "--output", tmp_path / "run", "--precision", "fp8", *FAST,
    )  # fmt: skip
    assert_clean_error(result, "--precision 'fp8': use one of float32, bfloat16, float16")
    assert not (tmp_path / "run").exists()
    result = invoke(
        "predict", "--model", root / "run", "--input", tmp_path / "test.csv",
        "--output", tmp_path / "pred.csv", "--dtype", "half",
    )  # fmt: skip
    assert_clean_error(result, "--dtype 'half': use one of float32, bfloat16, float16")
    assert not (tmp_path / "pred.csv").exists()


def test_bfloat16_training_and_prediction(trained, tmp_path):
    """``--precision bfloat16`` trains in mixed precision (float32 master weights, so the saved
    model is float32) and records the precision, so a float32 resume is refused;
    ``predict --dtype bfloat16`` gives the float32 probabilities to bfloat16's precision."""
    root, _ = trained
    df = table(24)
    df.to_csv(tmp_path / "train.csv", index=False)
    args = ["train", "--train", tmp_path / "train.csv", "--target", "label", "--text", "text",
            "--output", tmp_path / "run", *FAST]  # fmt: skip
    result = invoke(*args, "--precision", "bfloat16")
    assert result.exit_code == 0, result.output
    assert "note: --precision bfloat16 on the CPU" in result.output  # these tests run on the CPU
    log = json.loads(next((tmp_path / "run").rglob("log.json")).read_text())
    assert "bfloat16" in json.dumps(log)
    meta = json.loads(next((tmp_path / "run").rglob("config.json")).read_text())
    assert meta.get("torch_dtype", meta.get("dtype", "float32")) == "float32"
    assert_clean_error(invoke(*args, "--resume"), "holds a run with other settings")

    df.drop(columns=["label"]).to_csv(tmp_path / "test.csv", index=False)
    probs = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"pred-{dtype}.csv"
        result = invoke(
            "predict", "--model", root / "run", "--input", tmp_path / "test.csv",
            "--output", out, "--id-col", "id", "--proba", "--dtype", dtype,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        probs[dtype] = pd.read_csv(out).filter(like="pos").to_numpy(float)
    assert probs["float32"].size == 24
    assert abs(probs["float32"] - probs["bfloat16"]).max() < 0.03
    assert abs(probs["float32"] - probs["bfloat16"]).max() > 0  # it did compute in bfloat16
