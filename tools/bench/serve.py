"""`mlxbert serve` under load: dynamic batching on, batching off, and the offline ceiling.

For each route (``embed``: all-MiniLM-L6-v2 as an embedder; ``predict``: a MiniLM
classifier) the script starts the real server on loopback twice - (a) dynamic batching on
(its default flags), (b) batching off (``--max-batch-requests 1``: one request per forward)
- both with the cache off, and sends one real sentence per request
(SST-2 dev, the demo data of mlxbert-kaggle) from 1, 8 and 64 concurrent clients, each a
keep-alive connection: a fixed number of requests per cell, stopped early at a time cap,
after a warm-up of ``--warmup`` requests at the highest concurrency.
It reports throughput, p50 / p99 latency and errors, next to (c) the same sentences computed
offline in this process (``mlxbert_core.embed`` / ``predict_logits`` via
``Classifier.logits``, batch 32) before and after the servers: the throughput ceiling (the
mean of the two), and the time of one forward of one sentence (p50 / p99 over the
sentences). Server and client CPU time per request are recorded too.

    python tools/bench/serve.py --json serve-cpu.json
    python tools/bench/serve.py --routes embed --requests 512 --concurrency 1,8,64
    python tools/bench/serve.py --device gpu ...

The classifier for ``predict`` is MiniLM with a freshly initialised two-label head, saved to
a temporary folder (the head does not change the work of a forward). The load generator is
a minimal asyncio HTTP/1.1 client, so that on a small machine the clients take as little CPU
from the server as possible; the server and the clients share the machine, as they would on
one host.
"""

from __future__ import annotations

# mlxbert_core first: on Linux it preloads OpenBLAS, which must happen before mlx.core loads.
import mlxbert_core  # isort: skip

import argparse
import asyncio
import contextlib
import gzip
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlxbert_glue import Classifier, create_task_model, save_task_model

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ROOT / "packages/mlxbert-kaggle/src/mlxbert_kaggle/demo_data/sst2_dev.tsv.gz"
MODES = {
    "batching": [],  # the server's defaults
    "no-batching": ["--max-batch-requests", "1"],
}
# Without mlxbert-kaggle (its CLI), the same server through the library.
LIBRARY = (
    "import sys\n"
    "from mlxbert_glue.serve import ServeSettings, run\n"
    "args, models, flags = sys.argv[1:], [], {}\n"
    "while args:\n"
    "    name, value = args.pop(0), args.pop(0)\n"
    "    if name == '--model': models.append(value)\n"
    "    elif name == '--device':\n"
    "        import mlxbert_core; mlxbert_core.set_device(value)\n"
    "    else: flags[name[2:].replace('-', '_')] = value\n"
    "types = {k: type(v) for k, v in vars(ServeSettings()).items()}\n"
    "run(models, ServeSettings(**{k: types[k](v) if types[k] is not type(None) else v\n"
    "                             for k, v in flags.items()}))\n"
)


def sentences(limit: int | None) -> list[str]:
    with gzip.open(SENTENCES, "rt", encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t")[0].strip() for line in fh][1:]
    rows = [r for r in rows if r]
    return rows[:limit] if limit else rows


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_isa() -> str:
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
        return ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags)
    return platform.machine()


# ------------------------------------------------------------------------ the HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads sized responses."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        reader = self.reader
        assert reader is not None
        status = int((await reader.readline()).split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def load(
    host: str, port: int, path: str, bodies: list[bytes], concurrency: int, requests: int,
    time_cap: float,
) -> dict:  # fmt: skip
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + time_cap

    async def client(index: int) -> None:
        nonlocal issued, errors
        conn = Connection(host, port)
        try:
            while issued < requests and time.perf_counter() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                started = time.perf_counter()
                try:
                    status, _ = await conn.post(path, body)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    errors += 1
                    conn.close()
                    continue
                if status != 200:
                    errors += 1
                else:
                    latencies.append(time.perf_counter() - started)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    seconds = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": issued,
        "ok": len(latencies),
        "errors": errors,
        "seconds": round(seconds, 3),
        "throughput": round(len(latencies) / seconds, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "capped": issued < requests,
    }


# ------------------------------------------------------------------------ server and offline


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), for CPU per request."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models: list[str], flags: list[str], device: str | None) -> tuple:
    port = free_port()
    exe = shutil.which("mlxbert")
    if exe:
        cmd = [exe, "serve"]
    elif importlib.util.find_spec("mlxbert_kaggle") is not None:
        cmd = [sys.executable, "-c", "from mlxbert_kaggle.cli import main; main()", "serve"]
    else:
        cmd = [sys.executable, "-c", LIBRARY]
    cmd += [*[a for m in models for a in ("--model", m)], "--port", str(port)]
    cmd += ["--cache-size", "0", "--log-level", "warning", *flags]
    if device:
        cmd += ["--device", device]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("mlxbert serve:"):
            return proc, port, cmd
    raise SystemExit(f"the server did not start: {' '.join(cmd)} (exit {proc.wait()})")


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def offline(route: str, source: str, texts: list[str], batch: int, singles: int) -> dict:
    """(c): the same sentences without a server; the best of three passes."""
    if route == "embed":
        model = mlxbert_core.from_pretrained(source)
        tokenizer = mlxbert_core.load_tokenizer(source)

        def run(items: list[str], size: int) -> None:
            mlxbert_core.embed(model, tokenizer, items, batch_size=size, progress=False)
    else:
        clf = Classifier.from_pretrained(source)

        def run(items: list[str], size: int) -> None:
            clf.logits(items, batch_size=size)

    run(texts[: batch * 2], batch)  # warm-up
    passes = []
    cpu = time.process_time()
    for _ in range(3):
        started = time.perf_counter()
        run(texts, batch)
        passes.append(time.perf_counter() - started)
    cpu_ms = 1000 * (time.process_time() - cpu) / (3 * len(texts))
    one = []
    for text in texts[:singles]:
        started = time.perf_counter()
        run([text], 1)
        one.append(time.perf_counter() - started)
    one_ms = np.array(one) * 1000
    return {
        "batch_size": batch,
        "throughput": round(len(texts) / min(passes), 2),
        "cpu_ms_per_sentence": round(cpu_ms, 2),
        "one_p50_ms": round(float(np.percentile(one_ms, 50)), 2),
        "one_p99_ms": round(float(np.percentile(one_ms, 99)), 2),
    }


def make_classifier(model: str, folder: Path) -> str:
    clf, tokenizer, _ = create_task_model(model, "binary", labels=["negative", "positive"])
    save_task_model(clf, tokenizer, folder, max_length=128)
    return str(folder)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="all-minilm-l6-v2")
    ap.add_argument("--routes", default="embed,predict")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--requests", type=int, default=512, help="per cell (c=1: a quarter)")
    ap.add_argument("--time-cap", type=float, default=60.0, help="seconds per cell")
    ap.add_argument("--sentences", type=int, default=None, help="first N of SST-2 dev (872)")
    ap.add_argument("--singles", type=int, default=100, help="offline one-sentence forwards")
    ap.add_argument("--warmup", type=int, default=512, help="requests per server before the cells")
    ap.add_argument("--device", default=None, help="cpu or gpu (server and offline)")
    ap.add_argument("--modes", default="batching,no-batching")
    ap.add_argument(
        "--batching-flags", default=" ".join(MODES["batching"]), help="the server flags of (a)"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.device:
        mlxbert_core.set_device(args.device)
    texts = sentences(args.sentences)
    levels = [int(x) for x in args.concurrency.split(",")]
    report: dict = {
        "cpu": cpu_name(), "isa": cpu_isa(), "cores": os.cpu_count(),
        "device": str(mx.default_device()), "mlx": mx.__version__,
        "blas": mlxbert_core.runtime_info().get("blas"), "load_before": os.getloadavg(),
        "sentences": len(texts), "results": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for route in args.routes.split(","):
            source = (
                args.model if route == "embed" else make_classifier(args.model, Path(tmp) / "clf")
            )
            key = "inputs"
            bodies = [json.dumps({key: t}).encode() for t in texts]
            out: dict = {"offline": offline(route, source, texts, 32, args.singles)}
            print(route, "offline", out["offline"], flush=True)
            modes = {**MODES, "batching": args.batching_flags.split()}
            for mode in args.modes.split(","):
                flags = modes[mode]
                proc, port, cmd = start_server([source], flags, args.device)
                shown = cmd[cmd.index("--model") :]
                out[mode] = {"command": " ".join(["mlxbert", "serve", *shown])}
                try:
                    # Warm-up at the highest concurrency: MLX builds and caches its CPU
                    # kernels per shape, and a server meets many batch shapes before it
                    # runs at its steady state (what a long-running server shows).
                    warm = max(levels)
                    asyncio.run(load("127.0.0.1", port, f"/{route}", bodies, warm, args.warmup, 60))
                    for c in levels:
                        n = args.requests if c > 1 else max(50, args.requests // 4)
                        server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
                        cell = asyncio.run(
                            load("127.0.0.1", port, f"/{route}", bodies, c, n, args.time_cap)
                        )
                        if server_cpu is not None and cell["ok"]:
                            used = cpu_seconds(proc.pid) - server_cpu
                            cell["server_cpu_ms_per_request"] = round(1000 * used / cell["ok"], 2)
                        if cell["ok"]:
                            used = time.process_time() - client_cpu
                            cell["client_cpu_ms_per_request"] = round(1000 * used / cell["ok"], 2)
                        out[mode][str(c)] = cell
                        print(route, mode, cell, flush=True)
                finally:
                    out[mode]["exit_status"] = stop_server(proc)
            # (c) again after the servers: the machine's load may have changed meanwhile
            out["offline_after"] = offline(route, source, texts, 32, args.singles)
            print(route, "offline after", out["offline_after"], flush=True)
            top = str(max(levels))
            a = out.get("batching", {}).get(top)
            b = out.get("no-batching", {}).get(top)
            c = out["offline"]
            ceiling = (c["throughput"] + out["offline_after"]["throughput"]) / 2
            if a and b:
                out["a_over_b"] = round(a["throughput"] / b["throughput"], 2)
            if a:
                out["a_over_c"] = round(a["throughput"] / ceiling, 2)
            if "1" in out.get("batching", {}):
                p99 = out["batching"]["1"]["p99_ms"]
                one = min(c["one_p99_ms"], out["offline_after"]["one_p99_ms"])
                out["p99_c1_over_one_forward_p99"] = round(p99 / one, 2)
                out["p99_c1_over_one_forward_p50"] = round(p99 / c["one_p50_ms"], 2)
            report["results"][route] = out
            print(route, {k: v for k, v in out.items() if "_over_" in k}, flush=True)
            if args.json:  # after each route, so that a later failure keeps what was measured
                Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
