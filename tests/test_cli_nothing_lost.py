"""The real `mlxbert` command, run as users run it (a subprocess, umask 022): every failure is
one line and exit 2 with nothing half-made left behind, no user file is replaced without
--overwrite, written files keep the umask's modes, and no run is reused unless its settings
match."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "packages" / "mlxbert-kaggle" / "tests" / "fixtures" / "tiny-bert"
GLUE = REPO.parent / "shared" / "data" / "glue"
MLXBERT = Path(sys.executable).with_name("mlxbert")
FAST = ["--model", TINY, "--epochs", "1", "--max-length", "32", "--batch-size", "16"]
GLUE_FAST = ["--model", TINY, "--epochs", "1", "--max-length", "32", "--max-train-samples", "32"]


def mlxbert(*args, cwd=None, env=None):
    """Run the command line with umask 022; returns (exit code, stdout + stderr)."""
    done = subprocess.run(
        [str(MLXBERT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        preexec_fn=lambda: os.umask(0o022),
        timeout=600,
    )
    return done.returncode, done.stdout + done.stderr


def failed(result, *fragments):
    code, out = result
    assert code == 2, out
    assert "Traceback" not in out, out
    for fragment in fragments:
        assert fragment in out, out
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def reviews(n=24) -> pd.DataFrame:
    words = ["a good and fun story", "a bad and dull story"]
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "keyword": [f"k{i % 3}" for i in range(n)],
            "text": [f"{words[i % 2]} number {i}" for i in range(n)],
            "label": ["pos" if i % 2 == 0 else "neg" for i in range(n)],
        }
    )


def _unsafe_folder(root: Path, payload) -> Path:
    """A model folder whose pytorch_model.bin runs ``payload`` when unpickled naively."""
    folder = root / "unsafe"
    folder.mkdir()
    shutil.copy(TINY / "config.json", folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (TINY / name).is_file():
            shutil.copy(TINY / name, folder)
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": payload}, protocol=2))
    return folder


class _Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _rebuild_with(inner, monkeypatch) -> _Call:
    """``torch._utils._rebuild_tensor_v2(<inner>, ...)``: a payload hidden in the arguments of
    the call that rebuilds tensors (pickled under torch's names, without torch; the stand-in
    modules live for the test only)."""
    module = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only its name is pickled
        return args

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    module._rebuild_tensor_v2 = _rebuild_tensor_v2
    if "torch" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setitem(sys.modules, "torch._utils", module)
    return _Call(_rebuild_tensor_v2, inner, 0, (2,), (1,), False)


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    """A 2-fold CV run on a small CSV (trained once for the module)."""
    root = tmp_path_factory.mktemp("cv")
    reviews().to_csv(root / "train.csv", index=False)
    reviews(8).drop(columns="label").to_csv(root / "test.csv", index=False)
    result = mlxbert(
        "train", "--train", root / "train.csv", "--target", "label", "--text", "text",
        "--id-col", "id", "--folds", "2", "--output", root / "cv", *FAST,
    )  # fmt: skip
    assert result[0] == 0, result[1]
    return root


def test_cv_outputs_keep_the_umask_modes(cv_run):
    run = cv_run / "cv"
    assert mode(run) == 0o755
    for name in ("metrics.json", "oof.csv"):
        assert mode(run / name) == 0o644, name
    for folder in ("fold-1", "fold-2"):
        assert mode(run / folder) == 0o755
        assert mode(run / folder / "mlxbert.json") == 0o644
    code, out = mlxbert("predict", "--model", run, "--input", cv_run / "test.csv",
                        "--output", cv_run / "sub.csv", "--id-col", "id")  # fmt: skip
    assert code == 0, out
    assert mode(cv_run / "sub.csv") == 0o644


def test_predict_checks_output_and_weights_before_running(cv_run):
    run = cv_run / "cv"
    test = cv_run / "test.csv"
    # --output is a folder: refused before any model runs.
    failed(mlxbert("predict", "--model", run, "--input", test, "--output", cv_run),
           "is a folder")  # fmt: skip
    # An existing file is replaced only with --overwrite.
    (cv_run / "keep.csv").write_text("mine\n")
    failed(mlxbert("predict", "--model", run, "--input", test, "--output", cv_run / "keep.csv"),
           "--overwrite")  # fmt: skip
    assert (cv_run / "keep.csv").read_text() == "mine\n"
    # Weights are per --model: a CV run and one of its folds are two models.
    out = cv_run / "w.csv"
    code, text = mlxbert("predict", "--model", run, "--model", run / "fold-2", "--weights",
                         "0.7,0.3", "--input", test, "--output", out, "--id-col", "id")  # fmt: skip
    assert code == 0, text
    failed(mlxbert("predict", "--model", run, "--model", run / "fold-2", "--weights",
                   "0.5,0.3,0.2", "--input", test, "--output", cv_run / "w3.csv"),
           "3 values for 2 models")  # fmt: skip
    assert not (cv_run / "w3.csv").exists()
    # With --each-fold every fold model counts: three weights for two folds + one fold.
    code, text = mlxbert("predict", "--model", run, "--model", run / "fold-2", "--each-fold",
                         "--weights", "0.5,0.3,0.2", "--input", test,
                         "--output", cv_run / "w3.csv")  # fmt: skip
    assert code == 0, text


def test_mean_ensemble_counts_a_cv_run_once(cv_run):
    from mlxbert_kaggle import TablePredictor

    run = cv_run / "cv"
    frame = pd.read_csv(cv_run / "test.csv")
    cv = TablePredictor([run]).predict_raw(frame)
    single = TablePredictor([run / "fold-1"]).predict_raw(frame)
    both = TablePredictor([run, run / "fold-1"]).predict_raw(frame)
    np.testing.assert_allclose(both, (cv + single) / 2, atol=1e-6)


def test_embed_reads_what_the_user_meant(tmp_path):
    table = reviews(6)
    table.assign(title=[f"the title of review {i}" for i in range(6)]).to_csv(
        tmp_path / "t.csv", index=False
    )  # two text columns: which one is meant must be said
    failed(mlxbert("embed", "--model", TINY, "--input", tmp_path / "t.csv",
                   "--output", tmp_path / "a.npy"), "--column")  # fmt: skip
    table[["id", "keyword", "text"]].to_csv(tmp_path / "one_text.csv", index=False)
    code, out = mlxbert("embed", "--model", TINY, "--input", tmp_path / "one_text.csv",
                        "--output", tmp_path / "b.npy")  # fmt: skip
    assert code == 0 and "embedding column 'text'" in out, out
    (tmp_path / "lines.txt").write_text("first line\n\nthird line\n   \nfifth\n")
    code, out = mlxbert("embed", "--model", TINY, "--input", tmp_path / "lines.txt",
                        "--output", tmp_path / "c.npy")  # fmt: skip
    assert code == 0, out
    assert np.load(tmp_path / "c.npy").shape[0] == 5  # row i is line i
    assert mode(tmp_path / "c.npy") == 0o644
    # Bad values and outputs: one line, before the model is loaded.
    failed(mlxbert("embed", "--model", TINY, "--text", "x", "--output", tmp_path / "d.npy",
                   "--batch-size", "0"), "--batch-size must be >= 1")  # fmt: skip
    failed(mlxbert("embed", "--model", TINY, "--text", "x " * 200, "--output",
                   tmp_path / "e.npy", "--max-length", "100000"), "at most 64 tokens")  # fmt: skip
    failed(mlxbert("embed", "--model", TINY, "--text", "x", "--output", tmp_path),
           "must end with .npy")  # fmt: skip
    failed(mlxbert("embed", "--model", TINY, "--text", "x", "--output", tmp_path / "c.npy"),
           "--overwrite")  # fmt: skip


def test_demo_never_replaces_a_folder_it_was_not_asked_to(tmp_path):
    target = tmp_path / "demo"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    failed(mlxbert("demo", "--output", target, "--model", TINY, "--train-rows", "100"),
           "not empty", "--overwrite")  # fmt: skip
    assert (target / "notes.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"
    code, out = mlxbert("demo", "--output", fresh, "--model", TINY, "--train-rows", "100",
                        "--max-length", "32")  # fmt: skip
    assert code == 0, out
    assert mode(fresh) == 0o755 and mode(fresh / "mlxbert.json") == 0o644
    assert not list(tmp_path.glob(".*"))  # no work folder left beside it


def _payload(kind: str, marker: Path, monkeypatch):
    if kind == "os.system":
        return _Call(os.system, f"touch {marker}")
    if kind == "posix.system":
        import posix

        return _Call(posix.system, f"touch {marker}")
    if kind == "builtins.eval":
        return _Call(eval, f"open({str(marker)!r}, 'w').close()")
    return _rebuild_with(_Call(os.system, f"touch {marker}"), monkeypatch)


# Each payload through a different command (the library refuses each one in every reader:
# mlxbert-core's checkpoint tests); every command that reads a checkpoint is covered.
@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("os.system", "train"),
        ("posix.system", "embed"),
        ("builtins.eval", "classify"),
        ("in a tensor rebuild", "glue finetune"),
    ],
)
def test_malicious_checkpoints_are_refused(tmp_path, kind, command, monkeypatch):
    marker = tmp_path / "executed"
    model = _unsafe_folder(tmp_path, _payload(kind, marker, monkeypatch))
    reviews().to_csv(tmp_path / "train.csv", index=False)
    out_dir = tmp_path / "run"
    args = {
        "train": ("train", "--train", tmp_path / "train.csv", "--target", "label", "--text",
                  "text", "--output", out_dir, "--model", model, "--epochs", "1"),
        "embed": ("embed", "--model", model, "--text", "hello", "--output", tmp_path / "e.npy"),
        "classify": ("classify", "--model", model, "hello"),
        "glue finetune": ("glue", "finetune", "--task", "rte", "--data-dir", GLUE, "--model",
                          model, "--output", out_dir),
    }[command]  # fmt: skip
    if command == "glue finetune" and not GLUE.is_dir():
        pytest.skip("the real GLUE files are not present")
    out = failed(mlxbert(*args))
    assert "refus" in out.lower() or "not a complete" in out, out
    assert not marker.exists()
    assert not out_dir.exists() and not (tmp_path / "e.npy").exists()  # nothing half-made


def test_a_failed_train_leaves_nothing_that_blocks_the_corrected_run(tmp_path, monkeypatch):
    model = _unsafe_folder(tmp_path, _payload("os.system", tmp_path / "executed", monkeypatch))
    reviews().to_csv(tmp_path / "train.csv", index=False)
    args = ["train", "--train", tmp_path / "train.csv", "--target", "label", "--text", "text",
            "--output", tmp_path / "run"]  # fmt: skip
    failed(mlxbert(*args, "--model", model, "--epochs", "1"), "refus")
    assert not (tmp_path / "run").exists()  # no _work/ left to refuse the next run with
    code, text = mlxbert(*args, *FAST)
    assert code == 0, text


@pytest.mark.skipif(not GLUE.is_dir(), reason="the real GLUE files are not present")
def test_glue_finetune_reuses_only_matching_runs(tmp_path):
    out = tmp_path / "rte"
    code, text = mlxbert("glue", "finetune", "--task", "rte", "--data-dir", GLUE,
                         "--output", out, "--seed", "1", "--seed", "2", *GLUE_FAST)  # fmt: skip
    assert code == 0, text
    assert "2 seed(s) x 1 epoch(s)" in text  # the plan, said up front
    summary = json.loads((out / "finetune.json").read_text())
    kept = [p.parent.name for p in (out / "runs").glob("seed-*/best")]
    assert kept == [f"seed-{summary['best_seed']}"]  # only the best seed's model stays
    before = tree(out)
    failed(mlxbert("glue", "finetune", "--task", "wnli", "--data-dir", GLUE, "--output", out,
                   "--seed", "1", "--seed", "2", *GLUE_FAST), "task", "'rte' -> 'wnli'")  # fmt: skip
    failed(mlxbert("glue", "finetune", "--task", "rte", "--data-dir", GLUE, "--output", out,
                   "--seed", "1", "--seed", "2", "--lr", "1e-3", *GLUE_FAST), "recipe")  # fmt: skip
    assert tree(out) == before  # refused runs touched nothing
    code, text = mlxbert("glue", "finetune", "--task", "rte", "--data-dir", GLUE, "--output",
                         out, "--seed", "1", "--seed", "2", *GLUE_FAST)  # fmt: skip
    assert code == 0 and "already finished" in text, text
    # glue eval refuses a model trained for another task unless forced.
    failed(mlxbert("glue", "eval", "--task", "wnli", "--data-dir", GLUE, "--model", out),
           "trained for 'rte'", "--force")  # fmt: skip
    code, text = mlxbert("glue", "eval", "--task", "wnli", "--data-dir", GLUE, "--model", out,
                         "--force")  # fmt: skip
    assert code == 0, text


@pytest.mark.skipif(not GLUE.is_dir(), reason="the real GLUE files are not present")
def test_glue_finetune_bad_input_leaves_no_folder(tmp_path):
    cases = [
        (["--task", "sst2", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["--task", "sst2", "--max-train-samples", "0"], "--max-train-samples must be >= 1"),
        (["--task", "mnli"], "MNLI"),
        (["--task", "nope"], "unknown GLUE task 'nope'"),
    ]
    for args, message in cases:
        out = failed(mlxbert("glue", "finetune", "--data-dir", GLUE, "--model", TINY,
                             "--output", tmp_path / "o", *args), message)  # fmt: skip
        assert not out.split("error: ", 1)[1].startswith(('"', "'")), out  # no stray quotes
        assert not (tmp_path / "o").exists(), args


def test_device_message_names_the_packages(tmp_path):
    import mlx.core as mx

    if mx.is_available(mx.gpu):
        pytest.skip("a GPU is available here")
    out = failed(mlxbert("embed", "--model", TINY, "--text", "x", "--output",
                         tmp_path / "x.npy", "--device", "gpu"))  # fmt: skip
    assert "mlx[cuda13]" in out and "mlx[cpu]" in out
