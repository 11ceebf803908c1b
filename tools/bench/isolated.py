"""Encoder inference and training steps, mlxbert against PyTorch, each side in its own process.

A process that has loaded one framework's libraries can slow the other's (thread pools,
shared symbols), so every side runs in a fresh process of its own: MLX through mlxbert's
public call (``from ... import``, ``model(ids, attention_mask=mask)`` in eval mode, which is
the compiled forward with one batch slice per core on a small CPU; ``eager`` is
``compile_forward(False)``), PyTorch through transformers (``BertModel`` with SDPA under
``inference_mode``; ``BertForSequenceClassification`` with AdamW for training, AMP bf16 and
fused AdamW on a GPU). Both read the same token ids from one ``.npz`` file. Runs alternate
(mlx, torch, torch, mlx, ...) and each side's median run is kept; the ratio is MLX / PyTorch
in sequences/s.

GPU float32 is like for like: ``--fp32-mode tf32`` lets both sides use TF32 tensor cores
(``MLX_ENABLE_TF32=1``; ``torch.backends.cuda.matmul.allow_tf32``), ``strict`` neither
(``MLX_ENABLE_TF32=0``); ``both`` (the default on a GPU) measures each.

    python tools/bench/isolated.py encoder --device cpu --models minilm,bert-base \\
        --grid 16x128,8x512 --runs 3 --torch-python /path/to/torch/python --json enc.json
    python tools/bench/isolated.py train --device cpu --models minilm --grid 8x128 --runs 3
    python tools/bench/isolated.py neighbour --models bert-base --grid 16x128 --runs 6 \\
        --torch-python /path/to/python/with/torch/and/mlx
    python3 tools/bench/isolated.py encoder --device gpu --dtypes bfloat16,float32 \\
        --grid 128x128,32x512 --json enc-gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _inputs(path: Path, batch: int, seq: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)  # the same draws as train.mlx_batch
    np.savez(
        path,
        input_ids=rng.integers(1000, 30000, (batch, seq)).astype(np.int32),
        attention_mask=np.ones((batch, seq), np.int32),
        token_type_ids=np.zeros((batch, seq), np.int32),
        labels=rng.integers(0, 2, batch).astype(np.int32),
    )


# ----------------------------------------------------------------------------- sides


def side_mlx(args) -> dict:
    sys.path.insert(0, str(HERE))
    import mlxbert_core  # isort: skip
    import mlx.core as mx
    import numpy as np

    data = dict(np.load(args.inputs))
    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    if args.work == "encoder":
        from encoder import bert_config

        from mlxbert_core.models.bert import BertModel, BertModelArgs

        model = BertModel(BertModelArgs.from_dict(bert_config(args.model)))
        model.eval()
        model.set_dtype(getattr(mx, args.dtype))
        if args.path == "eager":
            model.compile_forward(False)
        ids, mask = data["input_ids"], data["attention_mask"]
        times = []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            mx.eval(model(ids, attention_mask=mask).last_hidden_state)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    else:
        import train

        geometry = train.MODELS["base" if args.model == "bert-base" else args.model]
        dtype = "bfloat16" if args.device == "gpu" else "float32"
        batch, seq = data["input_ids"].shape
        run = train.mlx_runner(geometry, int(batch), int(seq), dtype)
        run(args.warmup)
        times = []
        for _ in range(args.iters):
            start = time.perf_counter()
            run(args.steps)
            times.append((time.perf_counter() - start) / args.steps)
    return {"times": times, "runtime": mlxbert_core.runtime_info()}


def side_torch(args) -> dict:
    sys.path.insert(0, str(HERE))
    if args.path == "beside-mlxbert":  # PyTorch in a process that imported mlxbert first
        import mlxbert_core  # noqa: F401
    import numpy as np
    import torch_side

    data = dict(np.load(args.inputs))
    if args.work == "encoder":
        times = torch_side.encoder(
            args.model, data, args.dtype, args.device, args.fp32_mode, args.iters, args.warmup
        )
    else:
        times = torch_side.train(
            args.model, data, args.device, args.fp32_mode, args.steps, args.warmup, args.iters
        )
    return {"times": times, **torch_side.versions()}


# ----------------------------------------------------------------------------- driver


def _env(side: str, fp32_mode: str) -> dict[str, str]:
    env = dict(os.environ)
    src = os.pathsep.join(str(p) for p in sorted((ROOT / "packages").glob("*/src")))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if side == "mlx" and fp32_mode != "default":
        env["MLX_ENABLE_TF32"] = "1" if fp32_mode == "tf32" else "0"
    return env


def _side(args, side: str, model: str, dtype: str, fp32_mode: str, inputs: Path, path: str):
    python = args.mlx_python if side == "mlx" else args.torch_python
    cmd = [python, str(Path(__file__).resolve()), f"side-{side}", "--work", args.work,
           "--model", model, "--dtype", dtype, "--device", args.device, "--inputs", str(inputs),
           "--fp32-mode", fp32_mode, "--iters", str(args.iters), "--warmup", str(args.warmup),
           "--steps", str(args.steps), "--path", path]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(side, fp32_mode))
    if proc.returncode != 0:
        raise SystemExit(f"{side} side failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def neighbour(args) -> None:
    """PyTorch's encoder inference in a process of its own, alone and after ``import
    mlxbert_core``, alternating; the ratio is beside / alone in sequences/s."""
    args.iters = args.iters or 5
    args.warmup = args.warmup or 2
    args.steps = args.steps or 2
    folder = Path(tempfile.mkdtemp(prefix="mlxbert-neighbour-"))
    rows = []
    for model in args.models.split(","):
        for cell in (args.grid or "16x128").split(","):
            batch, seq = (int(v) for v in cell.lower().split("x"))
            inputs = folder / f"encoder-{batch}x{seq}.npz"
            _inputs(inputs, batch, seq)
            runs: dict[str, list[float]] = {"alone": [], "beside-mlxbert": []}
            loads = []
            for r in range(args.runs):
                order = ("alone", "beside-mlxbert") if r % 2 == 0 else ("beside-mlxbert", "alone")
                for path in order:
                    loads.append(_load())
                    out = _side(args, "torch", model, "float32", "default", inputs, path)
                    runs[path].append(batch / statistics.median(out["times"]))
            row = {
                "model": model, "batch": batch, "seq": seq, "runs_seq_per_s": runs,
                "median_ratio": statistics.median(runs["beside-mlxbert"])
                / statistics.median(runs["alone"]),
                "best_ratio": max(runs["beside-mlxbert"]) / max(runs["alone"]),
                "load_1min": loads,
            }  # fmt: skip
            rows.append(row)
            print(
                f"neighbour {model} {batch}x{seq}: PyTorch alone "
                f"{statistics.median(runs['alone']):.2f} seq/s, beside mlxbert "
                f"{statistics.median(runs['beside-mlxbert']):.2f}; median ratio "
                f"{row['median_ratio']:.3f}, best {row['best_ratio']:.3f} "
                f"(load {min(loads)}-{max(loads)})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", choices=["encoder", "train", "neighbour", "side-mlx", "side-torch"]
    )
    parser.add_argument("--work", default="encoder", choices=["encoder", "train"])  # a side's
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--models", default="minilm,bert-base")
    parser.add_argument("--model", default="minilm")  # a side's
    parser.add_argument("--grid", default=None, help="batch x length cells (default by device)")
    parser.add_argument("--dtypes", default=None, help="GPU: bfloat16,float32; CPU: float32")
    parser.add_argument("--dtype", default="float32")  # a side's
    parser.add_argument("--fp32-mode", default=None, choices=["tf32", "strict", "both", "default"])
    parser.add_argument("--paths", default="default", help="MLX paths: default,eager")
    parser.add_argument("--path", default="default")  # a side's
    parser.add_argument("--runs", type=int, default=3, help="processes per side")
    parser.add_argument("--iters", type=int, default=None, help="timed calls (rounds) per run")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="train: steps per round")
    parser.add_argument("--inputs", type=Path, default=None)  # a side's
    parser.add_argument("--mlx-python", default=sys.executable)
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "neighbour":
        args.work = "encoder"
        return neighbour(args)
    if not args.command.startswith("side-"):
        args.work = args.command
    gpu = args.device == "gpu"
    training = args.work == "train"
    if args.iters is None:
        args.iters = 3 if training else (20 if gpu else 5)
    if args.warmup is None:
        args.warmup = 3 if gpu or training else 2
    if args.steps is None:
        args.steps = 10 if gpu else 2
    if args.command.startswith("side-"):
        result = (side_mlx if args.command == "side-mlx" else side_torch)(args)
        print(json.dumps(result, default=str))
        return
    grid = args.grid or ("32x128" if gpu else "8x128") if training else args.grid or (
        "128x128,32x512" if gpu else "16x128")  # fmt: skip
    dtypes = (args.dtypes or ("bfloat16,float32" if gpu else "float32")).split(",")
    if training:
        dtypes = ["bfloat16" if gpu else "float32"]
    modes = args.fp32_mode or ("both" if gpu else "default")
    modes = ["tf32", "strict"] if modes == "both" else [modes]
    folder = Path(tempfile.mkdtemp(prefix="mlxbert-isolated-"))
    results = []
    for model in args.models.split(","):
        for cell in grid.split(","):
            batch, seq = (int(v) for v in cell.lower().split("x"))
            inputs = folder / f"{args.work}-{batch}x{seq}.npz"
            _inputs(inputs, batch, seq)
            for dtype in dtypes:
                for mode in modes if dtype == "float32" and gpu else ["default"]:
                    for path in args.paths.split(",") if not training else ["default"]:
                        runs = {"mlx": [], "torch": []}
                        loads = []
                        for r in range(args.runs):
                            order = ("mlx", "torch") if r % 2 == 0 else ("torch", "mlx")
                            for side in order:
                                loads.append(_load())
                                out = _side(args, side, model, dtype, mode, inputs, path)
                                runs[side].append(statistics.median(out["times"]))
                                meta = out
                        mlx_s = statistics.median(runs["mlx"])
                        torch_s = statistics.median(runs["torch"])
                        row = {
                            "work": args.work, "model": model, "batch": batch, "seq": seq,
                            "dtype": dtype, "fp32_mode": mode, "mlx_path": path,
                            "mlx_seq_per_s": batch / mlx_s, "torch_seq_per_s": batch / torch_s,
                            "ratio": torch_s / mlx_s,
                            "mlx_runs_seq_per_s": [batch / t for t in runs["mlx"]],
                            "torch_runs_seq_per_s": [batch / t for t in runs["torch"]],
                            "load_1min": loads,
                        }  # fmt: skip
                        results.append(row)
                        print(
                            f"{args.work} {model} {batch}x{seq} {dtype} {mode} {path}: "
                            f"MLX {row['mlx_seq_per_s']:.1f} seq/s, PyTorch "
                            f"{row['torch_seq_per_s']:.1f} seq/s, {row['ratio']:.2f}x "
                            f"(load {min(loads)}-{max(loads)})",
                            flush=True,
                        )
    summary = {"device": args.device, "rows": results, "last_side": meta}
    try:
        sys.path.insert(0, str(ROOT / "packages" / "mlxbert-core" / "src"))
        from mlxbert_core._private.cpu_info import cpu_info

        summary["cpu"] = cpu_info()
    except ImportError:
        pass
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
