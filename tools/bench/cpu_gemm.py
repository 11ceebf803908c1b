"""Matrix products on one CPU core at the shapes of a packed MiniLM forward.

A packed forward on a small CPU runs one group of rows per core, each on its own MLX stream
with OpenBLAS on one thread (mlxbert_core.parallel). This times its products the same way:
``rows`` of activations (a group of about 16 sentences of SST-2 is 400 tokens) against the
weights of all-MiniLM-L6-v2's layers (hidden 384, feed-forward 1536, and the three attention
projections side by side, 1152), each product evaluated on its own, in GFLOP/s:

* ``x @ W.T``: the weight as checkpoints store it, ``[out, in]`` (what ``nn.Linear`` does);
* ``x @ Wt``: the weight stored transposed, ``[in, out]``;
* ``addmm``: ``mx.addmm(b, x, W.T)``, the bias filled into the output first;
* ``+ b``: ``x @ W.T + b``, the bias added after.

It gives the floor under a forward's time: a forward's matrix-product FLOPs over these rates.

    python tools/bench/cpu_gemm.py [--rows 400,800] [--json cpu-gemm.json]
"""

from __future__ import annotations

# mlxbert_core first: on Linux it preloads OpenBLAS, which must happen before mlx.core loads.
import mlxbert_core  # isort: skip

import argparse
import json
import os
import time
from pathlib import Path

import mlx.core as mx

SHAPES = [(384, 384), (384, 1152), (384, 1536), (1536, 384)]  # (in, out)


def rate(fn, flops: float, repeats: int) -> float:
    for _ in range(5):
        mx.eval(fn())
    started = time.perf_counter()
    for _ in range(repeats):
        mx.eval(fn())
    return flops * repeats / (time.perf_counter() - started) / 1e9


def measure_shape(rows: int, k: int, n: int, repeats: int) -> dict:
    """GFLOP/s of ``rows`` x ``k`` activations against an ``[n, k]`` weight, four ways."""
    x = mx.random.normal((rows, k))
    w = mx.random.normal((n, k))
    wt = mx.array(w.T)
    b = mx.random.normal((n,))
    mx.eval(x, w, wt, b)
    flops = 2.0 * rows * k * n
    ways = {
        "x @ W.T": lambda: x @ w.T,
        "x @ Wt": lambda: x @ wt,
        "addmm": lambda: mx.addmm(b, x, w.T),
        "+ b": lambda: x @ w.T + b,
    }
    out: dict = {"rows": rows, "in": k, "out": n}
    out.update({name: round(rate(fn, flops, repeats), 1) for name, fn in ways.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", default="400,800")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    try:
        row_counts = [int(r) for r in args.rows.split(",")]
    except ValueError:
        ap.error(f"--rows takes row counts, comma-separated; got {args.rows!r}")
    if min(row_counts) < 1 or args.repeats < 1:
        ap.error("--rows and --repeats must be positive")
    mx.set_default_device(mx.cpu)
    mlxbert_core.runtime.set_blas_threads(1)
    report: dict = {"runtime": mlxbert_core.runtime_info(), "load_before": os.getloadavg()}
    rows_out = []
    for rows in row_counts:
        for k, n in SHAPES:
            row = measure_shape(rows, k, n, args.repeats)
            rows_out.append(row)
            print(json.dumps(row), flush=True)
    report["results"] = rows_out
    report["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
