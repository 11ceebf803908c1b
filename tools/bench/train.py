"""Training-step throughput: mlxbert's compiled MLX step vs PyTorch + transformers.

Both sides train ``BertForSequenceClassification`` (random weights, 2 labels) with AdamW
(weight decay 0.01), gradient clipping at 1.0 and hidden dropout 0.1, on the same batch shape,
in the same process:

* MLX: ``mlxbert_core.training.Trainer`` (one ``mx.compile`` step: forward, backward,
  clipping, update); bfloat16 compute with float32 master weights on GPU, float32 on CPU.
* PyTorch: eager ``BertForSequenceClassification`` (sdpa attention), ``torch.optim.AdamW``
  (fused on CUDA), autocast bfloat16 on GPU, float32 on CPU.

Attention-probability dropout is off on both sides (mlxbert's fused attention has none).
The sides are timed in alternating rounds (median round kept), so a busy machine slows both
alike. Reported: sequences/s per side and the ratio MLX / PyTorch; on GPU also MFU against the bf16
matrix-product peak measured in this run. ``--memory`` adds peak memory of BERT-base
fine-tuning at 32 x 512 with and without gradient checkpointing (CPU: ``--memory-batch``).

Run from the repository root, e.g.::

    python tools/bench/train.py --device cpu --batch 8 --seq 128 --json train-cpu.json
    python tools/bench/train.py --device gpu --memory --json train-gpu.json

The script needs only ``mlx`` and ``packages/mlxbert-core/src`` importable (installed, or on
``PYTHONPATH``); torch + transformers are optional (that side is skipped with a message).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path


def _early_threads() -> int | None:
    """``--threads N`` must act before OpenBLAS is loaded (at ``import mlxbert_core``)."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return None


THREADS = _early_threads()
if THREADS:
    os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)

# mlxbert_core first: on Linux CPUs it loads OpenBLAS before mlx.core is imported.
try:
    import mlxbert_core
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packages/mlxbert-core/src"))
    import mlxbert_core

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402

from mlxbert_core.models.bert import BertForSequenceClassification, BertModelArgs  # noqa: E402
from mlxbert_core.training import Trainer, TrainingConfig  # noqa: E402

MODELS = {
    # BERT-base (bert-base-uncased geometry)
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    # MiniLM-L6-H384 (all-MiniLM-L6-v2 geometry)
    "minilm": dict(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    ),
}
COMMON = dict(
    vocab_size=30522,
    max_position_embeddings=512,
    type_vocab_size=2,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.0,
    num_labels=2,
)


def log(message: str) -> None:
    print(message, flush=True)


def train_flops_per_sequence(geometry: dict, seq: int) -> float:
    """Matrix-product FLOPs of one training step per sequence (3 x forward: forward, and
    backward for activations and weights); embeddings and the tiny head are left out."""
    d, layers, inter = (
        geometry["hidden_size"],
        geometry["num_hidden_layers"],
        geometry["intermediate_size"],
    )
    per_token_weights = 2 * (4 * d * d + 2 * d * inter) * layers
    per_token_attention = 2 * 2 * seq * d * layers  # Q K^T and P V
    return 3.0 * seq * (per_token_weights + per_token_attention)


# ----------------------------------------------------------------------------- MLX side
def mlx_model(geometry: dict):
    mx.random.seed(0)
    model = BertForSequenceClassification(BertModelArgs.from_dict({**COMMON, **geometry}))
    mx.eval(model.parameters())
    return model


def mlx_loss(model, batch):
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    return nn.losses.cross_entropy(logits.astype(mx.float32), batch["labels"], reduction="mean")


def mlx_batch(batch: int, seq: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": mx.array(rng.integers(1000, 30000, (batch, seq)).astype(np.int32)),
        "attention_mask": mx.ones((batch, seq), dtype=mx.int32),
        "token_type_ids": mx.zeros((batch, seq), dtype=mx.int32),
        "labels": mx.array(rng.integers(0, 2, batch).astype(np.int32)),
    }


def with_adapter(model, adapter):
    """``model`` with an mlxbert-lora preset applied ("qlora": 4-bit base, group 64;
    "balanced": float base; r=8 on attention), or unchanged when ``adapter`` is None."""
    if adapter:
        from mlxbert_lora import LoraConfig, apply_lora
        from mlxbert_quant import QuantizedLinear

        apply_lora(
            model,
            LoraConfig.preset(adapter, model=model),
            quantize_layer=QuantizedLinear.from_linear,  # the fast quantized product
        )
        mx.eval(model.parameters())
    return model


def mlx_runner(
    geometry, batch, seq, dtype, compile_step=True, checkpointing=False, adapter=None, min_rows=None
):
    """A closure running n MLX training steps and waiting for them. ``adapter``: an
    mlxbert-lora preset ("qlora", "balanced") applied first; ``min_rows``: the rows from which
    QLoRA's base layers dequantize before a product, GPU and CPU alike (None: the package's
    defaults; a huge number: always ``mx.quantized_matmul``)."""
    model = with_adapter(mlx_model(geometry), adapter)
    cfg = TrainingConfig(
        learning_rate=2e-5,
        weight_decay=0.01,
        schedule="constant",
        batch_size=batch,
        max_grad_norm=1.0,
        compute_dtype=dtype,
        compile=compile_step,
        gradient_checkpointing=checkpointing,
    )
    trainer = Trainer(model, mlx_loss, cfg)
    data = mlx_batch(batch, seq)

    def run(steps: int) -> float:
        for _ in range(steps):
            loss = trainer.step(data)
        value = float(loss)
        mx.synchronize()
        return value

    if min_rows is None:
        return run
    from mlxbert_quant._private import linear

    def run_with_threshold(steps: int) -> float:
        # Read when the step is traced (its first call) or, uncompiled, on every call.
        defaults = linear.MIN_ROWS_GPU, linear.MIN_ROWS_CPU
        linear.MIN_ROWS_GPU = linear.MIN_ROWS_CPU = min_rows
        try:
            return run(steps)
        finally:
            linear.MIN_ROWS_GPU, linear.MIN_ROWS_CPU = defaults

    return run_with_threshold


def mlx_peak_memory(geometry, batch, seq, dtype, checkpointing, steps=2, adapter=None):
    mx.clear_cache()
    mx.reset_peak_memory()
    model = with_adapter(mlx_model(geometry), adapter)
    cfg = TrainingConfig(
        schedule="constant", compute_dtype=dtype, gradient_checkpointing=checkpointing
    )
    trainer = Trainer(model, mlx_loss, cfg)
    data = mlx_batch(batch, seq)
    for _ in range(steps):
        mx.eval(trainer.step(data))
    mx.synchronize()
    peak = mx.get_peak_memory()
    del trainer, model, data
    gc.collect()
    mx.clear_cache()
    return peak


def mlx_matmul_peak(dtype=mx.bfloat16, n=8192, repeats=20) -> float:
    a = mx.random.normal((n, n)).astype(dtype)
    b = mx.random.normal((n, n)).astype(dtype)
    mx.eval(a, b)
    for _ in range(3):
        mx.eval(a @ b)
    mx.synchronize()
    start = time.perf_counter()
    outs = [a @ b for _ in range(repeats)]
    mx.eval(outs)
    mx.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- torch side
def torch_available():
    try:
        import torch
        import transformers
    except ImportError as exc:
        return None, f"torch/transformers not importable ({exc}); PyTorch side skipped"
    return (torch, transformers), None


def torch_model(libs, geometry, device, checkpointing=False):
    torch, transformers = libs
    torch.manual_seed(0)
    config = transformers.BertConfig(**COMMON, **geometry)
    try:
        model = transformers.BertForSequenceClassification(config, attn_implementation="sdpa")
    except TypeError:
        model = transformers.BertForSequenceClassification(config)
    if checkpointing:
        model.gradient_checkpointing_enable()
    return model.to(device).train()


def torch_step_fn(libs, model, device, use_amp):
    torch, _ = libs
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)
    ]
    kwargs = {"fused": True} if device == "cuda" else {}
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=2e-5,
        **kwargs,
    )

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_amp):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    return step


def torch_batch(libs, batch, seq, device, seed=0):
    torch, _ = libs
    rng = np.random.default_rng(seed)
    return {
        "input_ids": torch.tensor(rng.integers(1000, 30000, (batch, seq)), device=device),
        "attention_mask": torch.ones((batch, seq), dtype=torch.long, device=device),
        "token_type_ids": torch.zeros((batch, seq), dtype=torch.long, device=device),
        "labels": torch.tensor(rng.integers(0, 2, batch), device=device),
    }


def torch_sync(libs, device):
    if device == "cuda":
        libs[0].cuda.synchronize()


def torch_runner(libs, geometry, batch, seq, device, use_amp):
    model = torch_model(libs, geometry, device)
    step = torch_step_fn(libs, model, device, use_amp)
    data = torch_batch(libs, batch, seq, device)

    def run(steps: int) -> float:
        for _ in range(steps):
            loss = step(data)
        value = float(loss.detach())
        torch_sync(libs, device)
        return value

    return run


def interleaved(runners: dict, batch: int, steps: int, warmup: int, rounds: int) -> dict:
    """Time the runners in alternating rounds (A B A B ...) and keep each one's median round:
    a busy machine then slows both sides alike instead of whichever ran second."""
    for run in runners.values():
        run(warmup)
    per_round: dict[str, list[float]] = {name: [] for name in runners}
    losses = {}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            losses[name] = run(steps)
            per_round[name].append(time.perf_counter() - start)
    out = {}
    for name, times in per_round.items():
        median = float(np.median(times))
        out[name] = {
            "seq_per_s": batch * steps / median,
            "step_ms": 1000 * median / steps,
            "round_seq_per_s": [batch * steps / t for t in times],
            "loss": losses[name],
        }
    return out


def torch_peak_memory(libs, geometry, batch, seq, checkpointing, steps=2):
    torch, _ = libs
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = torch_model(libs, geometry, "cuda", checkpointing)
    step = torch_step_fn(libs, model, "cuda", True)
    data = torch_batch(libs, batch, seq, "cuda")
    for _ in range(steps):
        step(data)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del model, step, data
    gc.collect()
    torch.cuda.empty_cache()
    return peak


def torch_matmul_peak(libs, n=8192, repeats=20) -> float:
    torch, _ = libs
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- driver
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="gpu" if mx.cuda.is_available() or mx.metal.is_available() else "cpu",
    )
    parser.add_argument(
        "--models", default="base,minilm", help="comma list of: " + ", ".join(MODELS)
    )
    parser.add_argument("--batch", type=int, help="sequences per step (default: GPU 32, CPU 8)")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--steps", type=int, help="timed steps per round (default: GPU 20, CPU 3)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch side")
    parser.add_argument(
        "--adapter",
        choices=("qlora", "balanced"),
        help="MLX only: train an mlxbert-lora adapter preset; with qlora, also a row with the "
        "base products always through mx.quantized_matmul (mlx_quantized_matmul)",
    )
    parser.add_argument("--eager", action="store_true", help="also time MLX without mx.compile")
    parser.add_argument(
        "--memory", action="store_true", help="peak memory with/without checkpointing"
    )
    parser.add_argument(
        "--memory-batch", type=int, help="batch for --memory (default: GPU 32, CPU 2)"
    )
    parser.add_argument("--memory-seq", type=int, default=512)
    parser.add_argument(
        "--memory-variants",
        default="plain,checkpointing,qlora,qlora-checkpointing",
        help="comma list of: plain, checkpointing, lora, lora-checkpointing, qlora, "
        "qlora-checkpointing",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for both sides (OpenBLAS for MLX, torch.set_num_threads); on a busy "
        "machine 1 avoids OpenBLAS's spin-waiting threads stalling each other",
    )
    parser.add_argument("--json", type=Path, help="write all results here")
    args = parser.parse_args()

    gpu = args.device == "gpu"
    mx.set_default_device(mx.gpu if gpu else mx.cpu)
    batch = args.batch or (32 if gpu else 8)
    steps = args.steps or (20 if gpu else 3)
    dtype = "bfloat16" if gpu else "float32"
    libs, why_not = (None, "--no-torch") if args.no_torch else torch_available()
    torch_device = "cuda" if gpu else "cpu"
    if libs is not None and gpu and not libs[0].cuda.is_available():
        libs, why_not = None, "torch has no CUDA device; PyTorch side skipped"
    if why_not:
        log(why_not)
    if libs is not None and not gpu and args.threads:
        libs[0].set_num_threads(args.threads)

    info = mlxbert_core.runtime_info() if hasattr(mlxbert_core, "runtime_info") else {}
    report = {
        "device": args.device,
        "platform": platform.platform(),
        "mlx": mx.__version__,
        "torch": libs[0].__version__ if libs else None,
        "transformers": libs[1].__version__ if libs else None,
        "mlx_blas": info.get("blas"),
        "cpu_threads": {
            "openblas": os.environ.get("OPENBLAS_NUM_THREADS") or info.get("threads"),
            "torch": libs[0].get_num_threads() if libs else None,
        },
        "batch": batch,
        "seq": args.seq,
        "steps_per_round": steps,
        "rounds": args.rounds,
        "mlx_dtype": dtype,
        "torch_precision": ("amp-bf16" if gpu else "fp32") if libs else None,
        "throughput": {},
    }
    log(
        f"MLX {mx.__version__} on {args.device} ({dtype}); batch {batch} x {args.seq}; "
        f"{args.rounds} alternating rounds of {steps} timed steps per side"
    )

    peak = None
    if gpu:
        peak = mlx_matmul_peak()
        report["bf16_matmul_peak_tflops_mlx"] = peak / 1e12
        if libs is not None:
            torch_peak = torch_matmul_peak(libs)
            report["bf16_matmul_peak_tflops_torch"] = torch_peak / 1e12
            peak = max(peak, torch_peak)
        log(f"measured bf16 matmul peak: {peak / 1e12:.0f} TFLOP/s")

    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        geometry = MODELS[name]
        flops = train_flops_per_sequence(geometry, args.seq)
        row = {"train_gflop_per_seq": flops / 1e9}
        runners = {"mlx": mlx_runner(geometry, batch, args.seq, dtype, adapter=args.adapter)}
        if args.eager:
            runners["mlx_eager"] = mlx_runner(
                geometry, batch, args.seq, dtype, compile_step=False, adapter=args.adapter
            )
        if args.adapter == "qlora":
            runners["mlx_quantized_matmul"] = mlx_runner(
                geometry, batch, args.seq, dtype, adapter="qlora", min_rows=1 << 62
            )
        if libs is not None and not args.adapter:
            runners["torch"] = torch_runner(libs, geometry, batch, args.seq, torch_device, gpu)
        row.update(interleaved(runners, batch, steps, args.warmup, args.rounds))
        del runners
        gc.collect()
        mx.clear_cache()
        log(
            f"[{name}] MLX compiled: {row['mlx']['seq_per_s']:.1f} seq/s ({row['mlx']['step_ms']:.1f} ms/step)"
        )
        if "mlx_eager" in row:
            log(f"[{name}] MLX eager:    {row['mlx_eager']['seq_per_s']:.1f} seq/s")
        if "mlx_quantized_matmul" in row:
            q = row["mlx_quantized_matmul"]
            log(
                f"[{name}] MLX, QLoRA base always through mx.quantized_matmul: "
                f"{q['seq_per_s']:.1f} seq/s ({q['step_ms']:.1f} ms/step)"
            )
        if "torch" in row:
            row["mlx_over_torch"] = row["mlx"]["seq_per_s"] / row["torch"]["seq_per_s"]
            log(
                f"[{name}] PyTorch:      {row['torch']['seq_per_s']:.1f} seq/s "
                f"-> MLX / PyTorch = {row['mlx_over_torch']:.2f}"
            )
        if peak:
            for side in ("mlx", "mlx_eager", "torch"):
                if side in row:
                    row[side]["mfu"] = row[side]["seq_per_s"] * flops / peak
            log(
                f"[{name}] MFU: "
                + ", ".join(f"{s} {row[s]['mfu']:.1%}" for s in ("mlx", "torch") if s in row)
            )
        report["throughput"][name] = row

    if args.memory:
        mem_batch = args.memory_batch or (32 if gpu else 2)
        geometry = MODELS["base"]
        memory = {"batch": mem_batch, "seq": args.memory_seq, "model": "base"}
        gib = 1024**3
        variants = [v.strip() for v in args.memory_variants.split(",") if v.strip()]
        for variant in variants:
            ckpt = variant.endswith("checkpointing")
            adapter = {"qlora": "qlora", "lora": "balanced"}.get(variant.split("-")[0])
            memory[f"mlx_{variant}_bytes"] = mlx_peak_memory(
                geometry, mem_batch, args.memory_seq, dtype, ckpt, adapter=adapter
            )
            log(
                f"[memory] BERT-base {mem_batch} x {args.memory_seq}, MLX {variant}: "
                f"{memory[f'mlx_{variant}_bytes'] / gib:.2f} GiB"
            )
            if libs is not None and gpu and not adapter:
                memory[f"torch_{variant}_bytes"] = torch_peak_memory(
                    libs, geometry, mem_batch, args.memory_seq, ckpt
                )
                log(f"[memory] PyTorch {variant}: {memory[f'torch_{variant}_bytes'] / gib:.2f} GiB")
        ratios = {
            "mlx_ratio": ("checkpointing", "plain"),
            "mlx_qlora_ratio": ("qlora", "plain"),
            "mlx_qlora_checkpointing_ratio": ("qlora-checkpointing", "checkpointing"),
            # QLoRA as it is usually run (with checkpointing) against default full fine-tuning.
            "mlx_qlora_checkpointing_vs_plain_ratio": ("qlora-checkpointing", "plain"),
            "mlx_lora_ratio": ("lora", "plain"),
        }
        for name, (num, den) in ratios.items():
            if f"mlx_{num}_bytes" in memory and f"mlx_{den}_bytes" in memory:
                memory[name] = memory[f"mlx_{num}_bytes"] / memory[f"mlx_{den}_bytes"]
                log(f"[memory] {num} / {den}: x{memory[name]:.2f}")
        report["memory"] = memory

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("device", "batch", "seq", "throughput")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
