"""A real server in a child process on a loopback port, and a plain HTTP client for it."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

READY = re.compile(r"^mlxbert serve: .* on (http://[^ ]+) ")
LIBRARY = (
    "import json, sys\n"
    "from mlxbert_glue.serve import ServeSettings, run\n"
    "args = json.loads(sys.argv[1])\n"
    "run(args['models'], ServeSettings(**args['settings']))\n"
)


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


class ServerProcess:
    """Starts ``cmd`` (which prints the ready line), reads its output in the background."""

    def __init__(self, cmd: Sequence[str], *, timeout: float = 180.0):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(
            target=self._read, args=(self.proc.stdout, self.stdout), daemon=True
        ).start()
        threading.Thread(
            target=self._read, args=(self.proc.stderr, self.stderr), daemon=True
        ).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"no ready line in {timeout} s:\n{self.output()}") from None
            found = READY.match(line)
            if found:
                self.url = found.group(1)
                break
            if self.proc.poll() is not None and self.lines.empty():
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.output()}")
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        self.host, self.port = host, int(port)

    def _read(self, stream, keep: list[str]) -> None:
        for line in stream:
            keep.append(line)
            self.lines.put(line)

    @classmethod
    def library(cls, models: Sequence[str], **settings: Any) -> ServerProcess:
        settings.setdefault("port", 0)
        settings.setdefault("log_level", "warning")
        args = json.dumps({"models": list(models), "settings": settings})
        return cls([sys.executable, "-c", LIBRARY, args])

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    # -- HTTP -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            sent = {"Content-Type": "application/json"} if data is not None else {}
            sent.update(headers or {})
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, headers, response.read())
        finally:
            conn.close()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value of every sample in /metrics."""
        reply = self.get("/metrics")
        assert reply.status == 200, reply
        out = {}
        for line in reply.body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, prefix: str) -> float:
        """Sum of the samples whose ``name{labels}`` starts with ``prefix``."""
        return sum(v for k, v in self.metrics().items() if k.startswith(prefix))

    def wait_for(self, check, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def in_threads(calls, *, barrier: bool = True) -> list[Any]:
    """Run the zero-argument ``calls`` at the same moment, one thread each; their results."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls)) if barrier else None

    def run(index: int) -> None:
        if start is not None:
            start.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # reported to the test by value
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
