"""Encoder inference throughput: mlxbert (MLX) vs PyTorch + transformers, in the same run.

Sequences per second of a forward pass (last_hidden_state) for a BERT-base-sized encoder
(12 layers, hidden 768, 12 heads) and a MiniLM-sized one (6 layers, hidden 384, 12 heads),
both with random weights, over a batch x length grid. The reference is transformers'
``BertModel`` with SDPA attention under ``torch.inference_mode()``; it is skipped with a
message when torch / transformers are not importable. MLX is measured twice on the same
model: the default (eager) forward and the ``compile_forward()`` path; ``mlx_seq_per_s`` and
``ratio`` in the JSON file are the compiled path, ``*_eager`` the default one. On CPU a third
MLX column, ``parallel``, is ``mlxbert_core.parallel.parallel_forward`` (the batch split over
one MLX CPU stream per core, OpenBLAS on one thread each), what ``embed`` uses on CPU
(``*_parallel`` in the JSON file).

    python tools/bench/encoder.py --device cpu --json cpu.json
    python tools/bench/encoder.py --device gpu --dtypes bfloat16,float32 --json gpu.json

Needs only mlxbert-core importable (installed, or ``PYTHONPATH=packages/mlxbert-core/src``).
"""

from __future__ import annotations

# mlxbert_core must be imported before mlx.core: on Linux it preloads OpenBLAS for MLX's CPU
# matmuls, which only works while mlx.core is not yet loaded.
import mlxbert_core  # noqa: F401  isort: skip

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_core.models.bert import BertModel, BertModelArgs
from mlxbert_core.parallel import parallel_forward

MODELS: dict[str, dict[str, int]] = {
    "bert-base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12},
    "minilm": {"num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12},
}
DEFAULT_GRID = {"cpu": "8x128,32x128,8x512", "gpu": "128x128,32x512"}
DEFAULT_DTYPES = {"cpu": "float32", "gpu": "bfloat16,float32"}
VOCAB = 30522


def bert_config(name: str) -> dict[str, Any]:
    spec = MODELS[name]
    return {
        "model_type": "bert",
        "vocab_size": VOCAB,
        "intermediate_size": 4 * spec["hidden_size"],
        "max_position_embeddings": 512,
        "hidden_act": "gelu",
        **spec,
    }


def parse_grid(text: str) -> list[tuple[int, int]]:
    cells = []
    for cell in text.split(","):
        batch, length = cell.lower().split("x")
        cells.append((int(batch), int(length)))
    return cells


def time_steps(steps: dict[str, Any], warmup: int, iters: int, min_seconds: float):
    """Median seconds per call of each step (each must block until its work is done).

    The steps are timed in alternation, so that both sides see the same machine load."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    start = time.perf_counter()
    rounds = 0
    while rounds < iters or (time.perf_counter() - start < min_seconds and rounds < 10 * iters):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: statistics.median(values) for name, values in times.items()}


# --------------------------------------------------------------------------------------------
# MLX side
# --------------------------------------------------------------------------------------------


def mlx_runner(config: dict[str, Any], dtype: str, device: str):
    """make(ids, mask, compiled) -> a step running the model's default forward, or its
    ``compile_forward()`` path (same model, same weights)."""
    mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    model = BertModel(BertModelArgs.from_dict(config))
    model.eval()
    model.set_dtype(getattr(mx, dtype))
    mx.eval(model.parameters())

    def make(ids: np.ndarray, mask: np.ndarray, compiled: bool | str):
        ids_mx, mask_mx = mx.array(ids), mx.array(mask)
        mx.eval(ids_mx, mask_mx)

        def step() -> None:
            if compiled == "parallel":
                model.compile_forward(False)
                out = parallel_forward(model, input_ids=ids_mx, attention_mask=mask_mx)
                mx.eval(out.last_hidden_state)
                return
            model.compile_forward(compiled)
            mx.eval(model(ids_mx, mask_mx).last_hidden_state)

        return step

    return make


# --------------------------------------------------------------------------------------------
# PyTorch side
# --------------------------------------------------------------------------------------------


def torch_available() -> str | None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    return None


def torch_runner(config: dict[str, Any], dtype: str, device: str):
    import torch
    from transformers import BertConfig
    from transformers import BertModel as TorchBertModel

    torch_device = "cuda" if device == "gpu" else "cpu"
    cfg = BertConfig(**{k: v for k, v in config.items() if k != "model_type"})
    cfg._attn_implementation = "sdpa"
    model = TorchBertModel(cfg, add_pooling_layer=True).eval()
    model = model.to(device=torch_device, dtype=getattr(torch, dtype))

    def make(ids: np.ndarray, mask: np.ndarray):
        ids_t = torch.from_numpy(ids).to(torch_device)
        mask_t = torch.from_numpy(mask).to(torch_device)

        def step() -> None:
            with torch.inference_mode():
                model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state  # noqa: B018
            if torch_device == "cuda":
                torch.cuda.synchronize()

        return step

    return make


# --------------------------------------------------------------------------------------------


def environment(device: str, torch_reason: str | None) -> dict[str, Any]:
    from mlxbert_core import runtime

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "mlx": mx.__version__,
        "mlx_device": str(mx.default_device()),
    }
    try:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--models", default="bert-base,minilm", help="comma list of " + ",".join(MODELS)
    )
    parser.add_argument("--grid", default=None, help="batch x length cells, e.g. 8x128,32x128")
    parser.add_argument("--dtypes", default=None, help="comma list: float32,bfloat16,float16")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="min timed seconds per cell")
    parser.add_argument("--no-torch", action="store_true", help="measure MLX only")
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")
    args = parser.parse_args(argv)

    grid = parse_grid(args.grid or DEFAULT_GRID[args.device])
    dtypes = (args.dtypes or DEFAULT_DTYPES[args.device]).split(",")
    models = args.models.split(",")
    for name in models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    torch_reason = "disabled by --no-torch" if args.no_torch else torch_available()
    if torch_reason:
        print(f"PyTorch reference skipped: {torch_reason}", file=sys.stderr)

    env = environment(args.device, torch_reason)
    print(json.dumps(env, indent=1, default=str))
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    header = (
        f"{'model':<10} {'dtype':<9} {'batch x len':>11} {'eager seq/s':>11} "
        f"{'compiled':>10} {'torch seq/s':>12} {'eager/torch':>11} {'compiled/torch':>14}"
    )
    print(header)
    print("-" * len(header))
    for name in models:
        config = bert_config(name)
        for dtype in dtypes:
            mlx_make = mlx_runner(config, dtype, args.device)
            torch_make = None if torch_reason else torch_runner(config, dtype, args.device)
            for batch, length in grid:
                ids = rng.integers(1, VOCAB, size=(batch, length), dtype=np.int64)
                mask = np.ones((batch, length), dtype=np.int64)
                steps = {
                    "mlx_eager": mlx_make(ids, mask, False),
                    "mlx": mlx_make(ids, mask, True),
                }
                if args.device == "cpu":
                    steps["mlx_parallel"] = mlx_make(ids, mask, "parallel")
                if torch_make is not None:
                    steps["torch"] = torch_make(ids, mask)
                seconds = time_steps(steps, args.warmup, args.iters, args.min_seconds)
                row: dict[str, Any] = {
                    "model": name,
                    "dtype": dtype,
                    "batch": batch,
                    "length": length,
                    "mlx_eager_seq_per_s": batch / seconds["mlx_eager"],
                    "mlx_seq_per_s": batch / seconds["mlx"],
                }
                if "mlx_parallel" in seconds:
                    row["mlx_parallel_seq_per_s"] = batch / seconds["mlx_parallel"]
                if "torch" in seconds:
                    row["torch_seq_per_s"] = batch / seconds["torch"]
                    row["ratio_eager"] = seconds["torch"] / seconds["mlx_eager"]
                    row["ratio"] = seconds["torch"] / seconds["mlx"]
                    if "mlx_parallel" in seconds:
                        row["ratio_parallel"] = seconds["torch"] / seconds["mlx_parallel"]
                rows.append(row)
                has_ref = "ratio" in row
                torch_col = f"{row['torch_seq_per_s']:12.1f}" if has_ref else f"{'-':>12}"
                eager_ratio = f"{row['ratio_eager']:10.2f}x" if has_ref else f"{'-':>11}"
                ratio_col = f"{row['ratio']:13.2f}x" if has_ref else f"{'-':>14}"
                parallel_col = ""
                if "mlx_parallel_seq_per_s" in row:
                    parallel_col = f"   parallel {row['mlx_parallel_seq_per_s']:.1f} seq/s" + (
                        f" ({row['ratio_parallel']:.2f}x)" if has_ref else ""
                    )
                print(
                    f"{name:<10} {dtype:<9} {f'{batch}x{length}':>11} "
                    f"{row['mlx_eager_seq_per_s']:11.1f} {row['mlx_seq_per_s']:10.1f} "
                    f"{torch_col} {eager_ratio} {ratio_col}{parallel_col}",
                    flush=True,
                )
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(
                {"device": args.device, "environment": env, "results": rows},
                f,
                indent=1,
                default=str,
            )
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
