"""BERT-base's matrix products alone, MLX against PyTorch, on a GPU.

The four GEMM shapes of a BERT-base layer (fused q/k/v, attention output, FFN in, FFN out) at
M = batch x length rows, in bfloat16, timed as MLX would run them in a model and as one
would write them by hand:

* ``mlx addmm W.T``: ``mx.addmm(bias, x, weight.T)``, what ``nn.Linear`` does (weight stored
  [out, in], as checkpoints store it), one product per ``mx.eval``;
* ``mlx addmm Wt``: the same with the weight stored transposed ([in, out], contiguous);
* ``mlx matmul W.T`` / ``mlx matmul Wt``: without the bias;
* ``mlx compiled mm+b``: ``mx.compile(lambda x, w, b: x @ w.T + b)``;
* ``... x20/eval``: twenty products in one ``mx.eval`` (what a compiled forward looks like:
  per-eval overheads amortised);
* ``mlx conv1d 1x1 x20/eval``: the product as a kernel-size-1 convolution;
* ``torch linear`` / ``torch matmul``: ``F.linear(x, w, b)`` and ``x @ w.T``;
  ``torch linear noreduced``: with ``allow_bf16_reduced_precision_reduction = False``.

With ``--backward``, the two products of a linear layer's backward pass as well (20 per
eval): ``dX = dY @ W`` and the weight gradient, as MLX's autodiff forms it (``X.T @ dY``,
then transposed) and the other way round (``dY.T @ X``, what PyTorch computes).

Reports microseconds per product (median of rounds) and TFLOP/s.

    python3 tools/bench/gemm.py [--rows 16384,4096] [--backward] [--json gemm.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SHAPES = {"qkv": (2304, 768), "out": (768, 768), "ffn in": (3072, 768), "ffn out": (768, 3072)}


def median_us(fn, sync, reps: int = 20, rounds: int = 7) -> float:
    fn()
    sync()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        times.append((time.perf_counter() - start) / reps)
    times.sort()
    return times[len(times) // 2] * 1e6


def mlx_per_eval_us(make, count: int = 20) -> float:
    """Microseconds per product with ``count`` products in one ``mx.eval``."""
    import mlx.core as mx

    return median_us(lambda: mx.eval([make() for _ in range(count)]), lambda: None, reps=1) / count


def mlx_backward_cases(m: int, n: int, k: int) -> dict[str, float]:
    import mlx.core as mx

    x = mx.random.normal((m, k)).astype(mx.bfloat16)
    dy = mx.random.normal((m, n)).astype(mx.bfloat16)
    w = (mx.random.normal((n, k)) * 0.02).astype(mx.bfloat16)
    mx.eval(x, dy, w)

    per_eval = mlx_per_eval_us
    return {
        "mlx dX = dY @ W": per_eval(lambda: dy @ w),
        "mlx dW = (X.T @ dY).T": per_eval(lambda: mx.contiguous((x.T @ dy).T)),
        "mlx dW^T = X.T @ dY": per_eval(lambda: x.T @ dy),
        "mlx dW = dY.T @ X": per_eval(lambda: dy.T @ x),
    }


def torch_backward_cases(m: int, n: int, k: int) -> dict[str, float]:
    import torch

    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    dy = torch.randn(m, n, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    sync = torch.cuda.synchronize
    with torch.inference_mode():
        return {
            "torch dX = dY @ W": median_us(lambda: dy @ w, sync),
            "torch dW = dY.T @ X": median_us(lambda: dy.T @ x, sync),
        }


def mlx_cases(m: int, n: int, k: int) -> dict[str, float]:
    import mlx.core as mx

    x = mx.random.normal((m, k)).astype(mx.bfloat16)
    w = (mx.random.normal((n, k)) * 0.02).astype(mx.bfloat16)
    wt = mx.contiguous(w.T)
    b = mx.zeros((n,), mx.bfloat16)
    x3, w3 = x.reshape(1, m, k), w.reshape(n, 1, k)
    mx.eval(x, w, wt, b, x3, w3)
    compiled = mx.compile(lambda x, w, b: x @ w.T + b)

    def none():
        return None

    per_eval = mlx_per_eval_us
    return {
        "mlx addmm W.T": median_us(lambda: mx.eval(mx.addmm(b, x, w.T)), none),
        "mlx addmm Wt": median_us(lambda: mx.eval(mx.addmm(b, x, wt)), none),
        "mlx matmul W.T": median_us(lambda: mx.eval(x @ w.T), none),
        "mlx matmul Wt": median_us(lambda: mx.eval(x @ wt), none),
        "mlx compiled mm+b": median_us(lambda: mx.eval(compiled(x, w, b)), none),
        "mlx addmm W.T x20/eval": per_eval(lambda: mx.addmm(b, x, w.T)),
        "mlx matmul Wt x20/eval": per_eval(lambda: x @ wt),
        # The same product as a 1x1 convolution (MLX's convolution path, cuDNN on CUDA).
        "mlx conv1d 1x1 x20/eval": per_eval(lambda: mx.conv1d(x3, w3)),
    }


def torch_cases(m: int, n: int, k: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    b = torch.zeros(n, device="cuda", dtype=torch.bfloat16)
    sync = torch.cuda.synchronize
    out = {}
    with torch.inference_mode():
        out["torch linear"] = median_us(lambda: F.linear(x, w, b), sync)
        out["torch matmul"] = median_us(lambda: x @ w.T, sync)
        previous = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
        out["torch linear noreduced"] = median_us(lambda: F.linear(x, w, b), sync)
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = previous
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="16384,4096", help="M values (batch x length)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--backward", action="store_true", help="also the backward products")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for m in (int(v) for v in args.rows.split(",")):
        for name, (n, k) in SHAPES.items():
            times = mlx_cases(m, n, k)
            if not args.no_torch:
                times |= torch_cases(m, n, k)
            if args.backward:
                times |= mlx_backward_cases(m, n, k)
                if not args.no_torch:
                    times |= torch_backward_cases(m, n, k)
            flops = 2 * m * n * k
            print(f"M={m} {name} (N={n}, K={k}):")
            for case, us in times.items():
                print(f"  {case:<24} {us:8.1f} us  {flops / us / 1e6:6.0f} TFLOP/s", flush=True)
            rows.append({"m": m, "n": n, "k": k, "gemm": name, "microseconds": times})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
