"""`mlxbert serve`: the command starts the real server (answers over HTTP, stops on SIGINT
and SIGTERM with status 0) and refuses bad flags with one line and status 2."""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlxbert_glue import Classifier, create_model_and_tokenizer, save_task_model
from mlxbert_glue import serve as glue_serve
from mlxbert_kaggle.cli import app

HERE = Path(__file__).parent
TINY = HERE / "fixtures" / "tiny-bert"
READY = re.compile(r"^mlxbert serve: .* on http://127\.0\.0\.1:(\d+) ")
CLI = [sys.executable, "-c", "from mlxbert_kaggle.cli import main; main()"]
runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model, tokenizer, _ = create_model_and_tokenizer(TINY, "binary", labels=["ham", "spam"])
    return save_task_model(
        model, tokenizer, tmp_path_factory.mktemp("serve") / "spam", max_length=32
    )


def _start(*args: str) -> tuple[subprocess.Popen, int, list[str]]:
    proc = subprocess.Popen(
        [*CLI, "serve", *args, "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            found = READY.match(lines.get(timeout=1))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if found:
            return proc, int(found.group(1)), seen
    proc.kill()
    raise AssertionError("the server did not start:\n" + "".join(seen))


def _post(port: int, path: str, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_answers_and_stops_cleanly(folder, stop):
    proc, port, seen = _start("--model", f"spam={folder}", "--model", str(TINY))
    try:
        status, body = _post(port, "/predict", {"inputs": "win money now", "model": "spam"})
        assert status == 200, body
        local = Classifier.from_pretrained(folder).classify("win money now")
        assert body["label"] == local["label"]
        assert body["confidence"] == pytest.approx(local["confidence"], abs=1e-5)
        status, vectors = _post(port, "/embed", {"inputs": ["a", "b"], "model": "tiny-bert"})
        assert status == 200 and len(vectors) == 2
        proc.send_signal(stop)
        assert proc.wait(timeout=120) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(seen)
    assert f"stopped ({signal.Signals(stop).name})" in output and "Traceback" not in output


def _clean_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and fragment in result.output, result.output


def test_help_lists_the_command_and_its_flags():
    assert "serve" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(
        app, ["serve", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    )
    assert result.exit_code == 0
    for flag in ("--max-batch-tokens", "--max-wait-ms", "--cache-size", "--auto-truncate"):
        assert flag in result.output


def test_bad_flags_are_one_line_and_exit_2(folder, tmp_path):
    result = runner.invoke(app, ["serve", "--model", str(folder), "--max-batch-requests", "0"])
    _clean_error(result, "--max-batch-requests 0: must be at least 1")
    result = runner.invoke(app, ["serve", "--model", f"a={folder}", "--model", f"a={TINY}"])
    _clean_error(result, "given twice")
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "missing"), "--port", "0"])
    _clean_error(result, "cannot open")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--model", str(folder), "--port", str(port)])
    _clean_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_without_the_extra_the_command_says_how_to_install(folder, monkeypatch):
    for name in ("server", "app", "routes", "metrics"):
        monkeypatch.delitem(sys.modules, f"mlxbert_glue.serve.{name}", raising=False)
        monkeypatch.delattr(glue_serve, name, raising=False)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = runner.invoke(app, ["serve", "--model", str(folder)])
    _clean_error(result, 'pip install "mlxbert-kaggle[serve]"')
