"""M2-BERT forward throughput vs a BERT-base-sized Transformer, in the same run.

Tokens per millisecond of a forward pass (last_hidden_state) at long sequence lengths for:

* ``m2-80M``: mlxbert-m2's M2-BERT at the 80M size (12 layers, hidden 768, Monarch GLU MLP,
  bidirectional + residual Hyena long convolutions), random weights, max length = L, in eval
  mode (filter spectra cached), optionally wrapped in ``mx.compile``; ``--m2-backends`` adds
  rows for other long-convolution backends (``m2-80M[rfft]``, ``m2-80M[matmul]``);
* ``mlx-bert-base``: mlxbert-core's ``BertModel`` (12 layers, hidden 768, 12 heads);
* ``torch-bert-base``: transformers' ``BertModel`` with SDPA attention under
  ``torch.inference_mode()``, ``max_position_embeddings`` extended to L (skipped with a
  message when torch / transformers are not importable).

Every model gets the same batch of random token ids (no padding) at each length; the ratios
printed are M2 over each baseline.

    python tools/bench/m2.py --device gpu --json m2-gpu.json
    python tools/bench/m2.py --device gpu --m2-backends auto,rfft --conv-check --no-mlx-bert
    python tools/bench/m2.py --device gpu --dtypes bfloat16 --gemm-check --no-mlx-bert
    python tools/bench/m2.py --device cpu --lengths 512 1024 --batch 1 --json m2-cpu.json

Needs mlxbert-core and mlxbert-m2 importable (installed, or
``PYTHONPATH=packages/mlxbert-core/src:packages/mlxbert-m2/src``).
"""

from __future__ import annotations

# mlxbert_core must be imported before mlx.core: on Linux it preloads OpenBLAS for MLX's CPU
# matmuls, which only works while mlx.core is not yet loaded.
import mlxbert_core  # noqa: F401  isort: skip

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from functools import partial
from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_core.models.bert import BertModel, BertModelArgs
from mlxbert_m2 import PRESETS, build_model
from mlxbert_m2._fftconv import monarch_fft_conv, monarch_kernel_spectrum, monarch_plan
from mlxbert_m2.mixer import rfft_kernel_spectrum, rfft_long_conv, set_long_conv_backend

VOCAB = 30522
#: Batch per length: about the same number of tokens per call up to 2k, fewer beyond (the
#: Transformer's attention memory grows with L^2 per sequence).
DEFAULT_BATCH = {
    "gpu": {512: 32, 1024: 16, 2048: 8, 4096: 4, 8192: 2},
    "cpu": {512: 2, 1024: 1, 2048: 1, 4096: 1, 8192: 1},
}
DEFAULT_LENGTHS = {"gpu": [512, 2048, 4096, 8192], "cpu": [512, 1024]}
DEFAULT_DTYPES = {"gpu": "bfloat16,float32", "cpu": "float32"}


def batch_for(device: str, length: int, override: int | None) -> int:
    if override:
        return override
    table = DEFAULT_BATCH[device]
    fitting = [b for n, b in sorted(table.items()) if n >= length]
    return fitting[0] if fitting else 1


def time_it(step, warmup: int, iters: int, min_seconds: float) -> float:
    """Median seconds per call of ``step`` (which must block until its work is done)."""
    for _ in range(warmup):
        step()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * iters:
            break
    return statistics.median(times)


def bert_base_config(length: int) -> dict[str, Any]:
    return {
        "model_type": "bert",
        "vocab_size": VOCAB,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "max_position_embeddings": length,
    }


def m2_config(length: int) -> dict[str, Any]:
    config = dict(PRESETS["m2-bert-80M-2k-retrieval"].config)
    config.update(max_position_embeddings=length, long_conv_l_max=length)
    return config


def gemm_check(lengths: list[int], dtypes: list[str], device: str, args) -> list[dict]:
    """M2-80M's four matrix products alone, as one layer runs them (the mixer's in / out
    projections, the Monarch MLP's two block-diagonal products), 20 layers per ``mx.eval``;
    ``gemm_ms_per_forward`` is 12 layers' worth, and ``tokens_per_ms_ceiling`` the model's
    throughput if everything else (long convolution, elementwise work) took no time."""
    import mlx.nn as nn

    from mlxbert_m2.mlp import BlockdiagLinear

    rows = []
    hidden, blocks = 768, 4
    for dtype in dtypes:
        layers = [
            nn.Linear(hidden, 3 * hidden),
            nn.Linear(hidden, hidden),
            BlockdiagLinear(hidden, 8 * hidden, blocks, bias=False),
            BlockdiagLinear(4 * hidden, hidden, blocks),
        ]
        for layer in layers:
            layer.set_dtype(getattr(mx, dtype))
            mx.eval(layer.parameters())
        for length in lengths:
            batch = batch_for(device, length, args.batch)
            x = mx.random.normal((batch, length, hidden)).astype(getattr(mx, dtype))
            xi = mx.random.normal((batch, length, 4 * hidden)).astype(x.dtype)
            mx.eval(x, xi)

            def step(x=x, xi=xi, layers=layers):
                mx.eval([[m(x) for m in layers[:3]] + [layers[3](xi)] for _ in range(20)])

            per_layer_ms = time_it(step, 2, args.iters, args.min_seconds) * 1e3 / 20
            forward_ms = 12 * per_layer_ms
            ceiling = batch * length / forward_ms
            print(
                f"gemms {dtype:8s} {batch} x {length}: {per_layer_ms:7.3f} ms per layer, "
                f"{forward_ms:8.3f} ms per forward, ceiling {ceiling:9.1f} tokens/ms",
                flush=True,
            )
            rows.append(
                {
                    "length": length,
                    "batch": batch,
                    "dtype": dtype,
                    "gemm_ms_per_layer": per_layer_ms,
                    "gemm_ms_per_forward": forward_ms,
                    "tokens_per_ms_ceiling": ceiling,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------
# MLX side
# ---------------------------------------------------------------------------------------------


def mlx_m2_runner(length: int, dtype: str, compile_: bool, backend: str = "auto"):
    model = build_model(m2_config(length), "encoder")
    model.eval()  # inference: the filter spectra are generated once and cached
    model.set_dtype(getattr(mx, dtype))
    set_long_conv_backend(model, backend)
    mx.eval(model.parameters())

    def forward(ids: mx.array) -> mx.array:
        return model(ids).last_hidden_state

    fn = mx.compile(forward) if compile_ else forward

    def make(ids: np.ndarray):
        ids_mx = mx.array(ids)
        mx.eval(ids_mx)
        return lambda: mx.eval(fn(ids_mx))

    return make


def mlx_bert_runner(length: int, dtype: str, compile_: bool):
    model = BertModel(BertModelArgs.from_dict(bert_base_config(length)))
    model.eval()
    model.set_dtype(getattr(mx, dtype))
    mx.eval(model.parameters())

    def make(ids: np.ndarray):
        ids_mx, mask = mx.array(ids), mx.ones(ids.shape, dtype=mx.int32)
        mx.eval(ids_mx, mask)
        return lambda: mx.eval(model(ids_mx, mask).last_hidden_state)

    return make


# ---------------------------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------------------------


def torch_available() -> str | None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    return None


def torch_bert_runner(length: int, dtype: str, device: str):
    import torch
    from transformers import BertConfig
    from transformers import BertModel as TorchBertModel

    torch_device = "cuda" if device == "gpu" else "cpu"
    config = bert_base_config(length)
    cfg = BertConfig(**{k: v for k, v in config.items() if k != "model_type"})
    cfg._attn_implementation = "sdpa"
    model = TorchBertModel(cfg, add_pooling_layer=False).eval()
    model = model.to(device=torch_device, dtype=getattr(torch, dtype))

    def make(ids: np.ndarray):
        ids_t = torch.from_numpy(ids).to(torch_device)
        mask_t = torch.ones_like(ids_t)

        def step() -> None:
            with torch.inference_mode():
                model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state  # noqa: B018
            if torch_device == "cuda":
                torch.cuda.synchronize()

        return step

    return make


def release_torch() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def distinct_backends(backends: list[str], dtype: str) -> list[str]:
    """Drop backends that resolve to the same computation as an earlier one for ``dtype``
    ("auto" is the rfft in float32 and the matrix-product FFT otherwise)."""
    seen, kept = set(), []
    for backend in backends:
        resolved = backend
        if backend == "auto":
            resolved = "rfft" if dtype == "float32" else "matmul"
        if resolved not in seen:
            seen.add(resolved)
            kept.append(backend)
    return kept


def _eval_call(fn, *args) -> None:
    mx.eval(fn(*args))


def conv_check(lengths: list[int], dtypes: list[str], device: str, args) -> list[dict]:
    """The long convolution alone at the 80M model's fused width (2 x 768 channels): error of
    the matrix-product FFT against the float32 rfft, and the time of each with cached spectra."""
    rows = []
    rng = np.random.default_rng(1)
    channels = 2 * 768
    for length in lengths:
        try:
            batch = batch_for(device, length, args.batch)
            plan = monarch_plan(length)
            u = mx.array(rng.standard_normal((batch, length, channels)).astype(np.float32))
            decay = np.exp(-np.linspace(0, 6, 2 * length, dtype=np.float32))[:, None]
            k = mx.array(decay * rng.standard_normal((2 * length, channels)).astype(np.float32))
            rfft_spec = rfft_kernel_spectrum(k)
            reference = rfft_long_conv(u, rfft_spec)
            mx.eval(reference, rfft_spec)
            rfft_step = partial(_eval_call, mx.compile(rfft_long_conv), u, rfft_spec)
            rfft_s = time_it(rfft_step, 2, args.iters, args.min_seconds)
            for dtype in dtypes:
                ud = u.astype(getattr(mx, dtype))
                spec = monarch_kernel_spectrum(k, plan).astype(ud.dtype)
                mx.eval(ud, spec)
                fn = mx.compile(lambda x, s, p=plan: monarch_fft_conv(x, s, p))
                y = fn(ud, spec).astype(mx.float32)
                err = float(mx.linalg.norm(y - reference) / mx.linalg.norm(reference))
                seconds = time_it(
                    partial(_eval_call, fn, ud, spec), 2, args.iters, args.min_seconds
                )
                row = {
                    "length": length,
                    "batch": batch,
                    "dtype": dtype,
                    "plan": [plan.n1, plan.n2],
                    "rel_error_vs_rfft": err,
                    "matmul_ms": seconds * 1e3,
                    "rfft_fp32_ms": rfft_s * 1e3,
                }
                print(
                    f"conv {dtype:8s} {batch} x {length} x {channels}: matmul {seconds * 1e3:7.3f} ms"
                    f"  rfft(fp32) {rfft_s * 1e3:7.3f} ms  rel.err {err:.2e}",
                    flush=True,
                )
                rows.append(row)
        except Exception as exc:  # report and go on to the model timings
            print(f"conv check at length {length} failed: {type(exc).__name__}: {exc}", flush=True)
            rows.append({"length": length, "error": f"{type(exc).__name__}: {exc}"[:500]})
    return rows


# ---------------------------------------------------------------------------------------------


def environment(device: str, torch_reason: str | None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mlx": mx.__version__,
        "mlx_device": str(mx.default_device()),
    }
    try:
        from mlxbert_core import runtime

        env["mlxbert_runtime"] = runtime.runtime_info()
    except Exception as exc:  # informative only
        env["mlxbert_runtime"] = f"unavailable: {exc}"
    if torch_reason is None:
        import torch
        import transformers

        env["torch"] = torch.__version__
        env["transformers"] = transformers.__version__
        env["torch_threads"] = torch.get_num_threads()
        if device == "gpu" and torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    else:
        env["torch"] = f"not available ({torch_reason})"
    return env


def measure(name: str, make_runner, ids: np.ndarray, args) -> dict[str, Any]:
    batch, length = ids.shape
    try:
        step = make_runner()(ids)
        seconds = time_it(step, args.warmup, args.iters, args.min_seconds)
    except Exception as exc:  # out of memory at long lengths, typically
        print(f"  {name:16s} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
        return {"model": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        gc.collect()
        if hasattr(mx, "clear_cache"):
            mx.clear_cache()
    tok_per_ms = batch * length / (seconds * 1e3)
    print(f"  {name:16s} {seconds * 1e3:10.2f} ms/call  {tok_per_ms:10.2f} tokens/ms", flush=True)
    return {"model": name, "ms_per_call": seconds * 1e3, "tokens_per_ms": tok_per_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=None, help="batch for every length")
    parser.add_argument("--dtypes", default=None, help="comma list: float32,bfloat16,float16")
    parser.add_argument("--no-compile", action="store_true", help="run M2 without mx.compile")
    parser.add_argument(
        "--m2-backends",
        default="auto",
        help="comma list of M2 long-convolution backends to time (auto,rfft,matmul); the first "
        "is 'm2-80M', the others 'm2-80M[backend]'",
    )
    parser.add_argument(
        "--conv-check",
        action="store_true",
        help="first time the long convolution alone (matmul FFT vs float32 rfft) and its error",
    )
    parser.add_argument(
        "--gemm-check",
        action="store_true",
        help="first time M2's matrix products alone: the throughput ceiling they leave",
    )
    parser.add_argument("--no-mlx-bert", action="store_true", help="skip mlxbert-core's BERT")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="min timed s per cell")
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")
    args = parser.parse_args(argv)

    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    lengths = args.lengths or DEFAULT_LENGTHS[args.device]
    dtypes = (args.dtypes or DEFAULT_DTYPES[args.device]).split(",")
    torch_reason = "disabled by --no-torch" if args.no_torch else torch_available()
    if torch_reason:
        print(f"PyTorch reference skipped: {torch_reason}", file=sys.stderr)
    env = environment(args.device, torch_reason)
    print(json.dumps(env, indent=1, default=str))

    conv_rows = conv_check(lengths, dtypes, args.device, args) if args.conv_check else []
    gemm_rows = gemm_check(lengths, dtypes, args.device, args) if args.gemm_check else []
    ceilings = {(r["dtype"], r["length"]): r["tokens_per_ms_ceiling"] for r in gemm_rows}
    backends = args.m2_backends.split(",")

    rng = np.random.default_rng(0)
    results = []
    for dtype in dtypes:
        for length in lengths:
            batch = batch_for(args.device, length, args.batch)
            ids = rng.integers(1000, VOCAB, size=(batch, length), dtype=np.int64)
            ids[:, 0] = 101
            print(f"{dtype} batch {batch} x length {length}", flush=True)
            cell: dict[str, Any] = {"dtype": dtype, "batch": batch, "length": length}
            runners = [
                (
                    "m2-80M" if i == 0 else f"m2-80M[{backend}]",
                    partial(mlx_m2_runner, length, dtype, not args.no_compile, backend),
                )
                for i, backend in enumerate(distinct_backends(backends, dtype))
            ]
            n_m2 = len(runners)
            if not args.no_mlx_bert:
                runners.append(("mlx-bert-base", partial(mlx_bert_runner, length, dtype, False)))
            if torch_reason is None:
                runners.append(
                    ("torch-bert-base", partial(torch_bert_runner, length, dtype, args.device))
                )
            runs = [measure(name, factory, ids, args) for name, factory in runners]
            release_torch()
            cell["runs"] = runs
            for m2_run in runs[:n_m2]:
                for run in runs[n_m2:]:
                    m2, base = m2_run.get("tokens_per_ms"), run.get("tokens_per_ms")
                    if m2 and base:
                        key = f"{m2_run['model']}_over_{run['model']}"
                        cell[key.replace("m2-80M_over", "m2_over")] = m2 / base
                        print(f"  {m2_run['model']} / {run['model']}: {m2 / base:.2f}x", flush=True)
            ceiling = ceilings.get((dtype, length))
            for run in runs[n_m2:]:
                if ceiling and run.get("tokens_per_ms"):
                    cell[f"gemm_ceiling_over_{run['model']}"] = ceiling / run["tokens_per_ms"]
                    print(
                        f"  M2's matrix products alone / {run['model']}: "
                        f"{ceiling / run['tokens_per_ms']:.2f}x (the most M2 could reach)",
                        flush=True,
                    )
            results.append(cell)

    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "environment": env,
                    "args": vars(args),
                    "conv_check": conv_rows,
                    "gemm_check": gemm_rows,
                    "results": results,
                },
                f,
                indent=1,
                default=str,
            )
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
