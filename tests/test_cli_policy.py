"""The command line's one error policy, checked over every command and over random bad input:
no traceback, one line, exit 2 (3 on an interrupt), nothing outside the output touched."""

from __future__ import annotations

import string
from pathlib import Path

import click
import pandas as pd
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from mlxbert_kaggle.cli import app, cmd_tools, cmd_train

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "packages" / "mlxbert-kaggle" / "tests" / "fixtures" / "tiny-bert")
runner = CliRunner()


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_runs_under_the_policy():
    commands = list(_commands(get_command(app)))
    assert len(commands) >= 10
    for path, command in commands:
        assert getattr(command.callback, "__mlxbert_guarded__", False), path


def test_interrupt_says_resume_only_where_there_is_one(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_tools, "core_embed", interrupted)
    result = runner.invoke(app, ["embed", "--model", TINY, "--text", "x", "--output",
                                 str(tmp_path / "x.npy")])  # fmt: skip
    assert result.exit_code == 3 and "--resume" not in result.output, result.output
    assert not (tmp_path / "x.npy").exists()

    monkeypatch.setattr(cmd_train, "train_table", interrupted)
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["train", "--train", str(tmp_path / "t.csv"), "--target",
                                 "label", "--output", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 3 and "--resume" in result.output, result.output


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("MLXBERT_DEBUG", "0")  # restored afterwards: --debug sets it
    args = ["embed", "--model", str(tmp_path / "absent"), "--text", "x", "--output",
            str(tmp_path / "x.npy")]  # fmt: skip
    plain = runner.invoke(app, args)
    assert plain.exit_code == 2 and isinstance(plain.exception, SystemExit)
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code != 0 and not isinstance(debug.exception, SystemExit)


# -- random bad input ---------------------------------------------------------------------------

CSV = "id,text,label\n" + "".join(f"r{i},word {i} here,{'ab'[i % 2]}\n" for i in range(12))
CORRUPTIONS = {
    "ok": CSV,
    "truncated": CSV[: len(CSV) // 2 - 3],
    "empty": "",
    "header only": "id,text,label\n",
    "binary": "\x00\xff\xfe garbage",
    "wrong types": "id,text,label\n1,2,3\n4,5,\n",
    "ragged": "id,text,label\nr1,a,b,c,d\nr2\n",
}
VALUES = st.sampled_from(["0", "-1", "1", "abc", "", "1e9", "2", "nan", "label", "text", "x"])
FLAGS = {
    "train": ["--epochs", "--batch-size", "--max-length", "--folds", "--lr", "--quantize",
              "--lora", "--task", "--max-rows", "--valid-fraction", "--metric", "--label-sep"],
    "predict": ["--weights", "--ensemble", "--id-col", "--text"],
    "embed": ["--batch-size", "--max-length", "--column", "--pooling"],
}  # fmt: skip


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    command=st.sampled_from(sorted(FLAGS)),
    corruption=st.sampled_from(sorted(CORRUPTIONS)),
    picks=st.lists(st.tuples(st.integers(0, 20), VALUES), max_size=4),
    missing_file=st.booleans(),
    name=st.text(string.ascii_lowercase, min_size=1, max_size=6),
)
def test_random_flags_and_corrupted_inputs_never_traceback(
    tmp_path_factory, command, corruption, picks, missing_file, name
):
    root = tmp_path_factory.mktemp("fuzz")
    data = root / "data.csv"
    data.write_text(CORRUPTIONS[corruption], encoding="latin-1")
    (root / "keep.txt").write_text("the user's file")
    source = root / "absent.csv" if missing_file else data
    out = root / f"out-{name}"
    base = {
        "train": ["train", "--train", source, "--target", "label", "--text", "text", "--model",
                  TINY, "--epochs", "1", "--max-length", "16", "--output", out],
        "predict": ["predict", "--model", root / "no-model", "--input", source, "--output",
                    out.with_suffix(".csv")],
        "embed": ["embed", "--model", TINY, "--input", source, "--output",
                  out.with_suffix(".npy")],
    }[command]  # fmt: skip
    flags = FLAGS[command]
    extra = [a for i, value in picks for a in (flags[i % len(flags)], value)]
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    result = runner.invoke(app, [str(a) for a in (*base, *extra)])
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exception is not None:
        assert isinstance(result.exception, (SystemExit, typer.Exit)), result.output
    assert "Traceback" not in result.output
    after = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    touched = {k for k in before if after.get(k) != before[k]}
    assert not touched, touched  # inputs and the user's files are never changed
    new = set(after) - set(before)
    assert new <= {out.with_suffix(".csv").name, out.with_suffix(".npy").name}, new
    if result.exit_code == 2:
        assert not out.exists() and not out.with_suffix(".csv").exists()


@pytest.mark.parametrize("command", ["train", "predict", "embed", "demo", "classify"])
def test_help_of_each_command(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
