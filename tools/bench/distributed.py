"""Data-parallel training throughput with mlxbert's Trainer over ``mx.distributed``.

Runs the same compiled BERT training step on 1, 2, 4 ... ranks at an equal per-rank batch
(weak scaling) and reports sequences/s for each world size, the speed-up over one rank and the
scaling efficiency (speed-up / ranks). Gradients are averaged with bucketed ``all_sum`` calls
inside the compiled step.

GPUs (one process per GPU, NCCL; NVLink multicast off)::

    NCCL_NVLS_ENABLE=0 python tools/bench/distributed.py --backend nccl --ranks 1,2,4 \\
        --model base --batch 32 --seq 128 --json dist-gpu.json

CPUs (ring backend over local TCP; for checking the mechanics, not for speed)::

    python tools/bench/distributed.py --backend ring --ranks 1,2 --model tiny --batch 8

Each world size is a separate ``mlx.launch`` run of this file with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if "--worker" in sys.argv and "--bind-cores" in sys.argv:
    # Before MLX starts its threads: rank r of n keeps the r-th n-th of this process's cores
    # (contiguous core numbers are usually one NUMA node, as GPUs are numbered by node).
    _rank = int(os.environ.get("MLX_RANK", 0))
    _size = int(sys.argv[sys.argv.index("--ranks-expected") + 1])
    _cores = sorted(os.sched_getaffinity(0))
    _share = max(1, len(_cores) // _size)
    os.sched_setaffinity(0, _cores[_rank * _share : (_rank + 1) * _share])

try:
    import mlxbert_core
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packages/mlxbert-core/src"))
    import mlxbert_core  # noqa: F401

import mlx.core as mx

MODELS = {
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "minilm": dict(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    ),
    "tiny": dict(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512
    ),
}


def worker(args) -> None:
    import mlx.nn as nn
    import numpy as np

    from mlxbert_core.models.bert import BertForSequenceClassification, BertModelArgs
    from mlxbert_core.training import Trainer, TrainingConfig, distributed

    group = distributed.init(strict=args.ranks_expected > 1)
    rank, size = group.rank(), group.size()
    if args.device == "gpu":
        mx.set_default_device(mx.gpu)
    config = {
        "vocab_size": 30522,
        "num_labels": 2,
        "hidden_dropout_prob": 0.1,
        **MODELS[args.model],
    }
    mx.random.seed(0)
    model = BertForSequenceClassification(BertModelArgs.from_dict(config))

    def loss_fn(model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
        return nn.losses.cross_entropy(logits.astype(mx.float32), batch["labels"], reduction="mean")

    dtype = args.dtype or ("bfloat16" if args.device == "gpu" else "float32")
    cfg = TrainingConfig(
        schedule="constant",
        compute_dtype=dtype,
        batch_size=args.batch,
        grad_reduce_dtype=args.reduce_dtype,
        communication_stream=args.comm_stream,
        overlap_grad_reduce=args.overlap,
    )
    mean_over_ranks = distributed.mean_over_ranks
    if args.grad_reduce == "none":
        # Diagnostic only: no all-reduce inside the step, neither the gradients' nor the loss's
        # (the ranks drift apart between the barriers around the timed steps), to separate the
        # cost of communication from the cost of running several ranks side by side.
        distributed.average_gradients = lambda grads, group, **_: grads
        distributed.mean_over_ranks = lambda value, group: value
    elif args.bucket_mib is not None:
        bucket_bytes = int(args.bucket_mib * 2**20)

        def bucketed(grads, group, *, dtype=None, stream=None):
            return nn.utils.average_gradients(
                grads, group=group, all_reduce_size=bucket_bytes, communication_stream=stream
            )

        distributed.average_gradients = bucketed
    trainer = Trainer(model, loss_fn, cfg)
    rng = np.random.default_rng(rank)  # each rank its own data shard
    batch = {
        "input_ids": mx.array(rng.integers(1000, 30000, (args.batch, args.seq)).astype(np.int32)),
        "attention_mask": mx.ones((args.batch, args.seq), dtype=mx.int32),
        "token_type_ids": mx.zeros((args.batch, args.seq), dtype=mx.int32),
        "labels": mx.array(rng.integers(0, 2, args.batch).astype(np.int32)),
    }
    for _ in range(args.warmup):
        loss = trainer.step(batch)
    mx.eval(loss)
    distributed.barrier(group)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = trainer.step(batch)
    mx.eval(loss)
    own = time.perf_counter() - start  # this rank's time, before waiting for the others
    distributed.mean_over_ranks = mean_over_ranks
    distributed.barrier(group)
    seconds = time.perf_counter() - start
    slots = mx.zeros((size,)).at[rank].add(own)
    per_rank = distributed.mean_over_ranks(slots, group) * size
    per_rank_ms = [round(1000 * float(t) / args.steps, 2) for t in per_rank.tolist()]
    if rank == 0:
        result = {
            "ranks": size,
            "seq_per_s": args.batch * size * args.steps / seconds,
            "step_ms": 1000 * seconds / args.steps,
            "per_rank_step_ms": per_rank_ms,
            "loss": float(loss),
        }
        Path(args.result).write_text(json.dumps(result))


def free_port(span: int) -> int:
    for _ in range(100):
        port = random.randint(20000, 60000)
        try:
            sockets = []
            for offset in range(span):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port + offset))
            for s in sockets:
                s.close()
            return port
        except OSError:
            for s in sockets:
                s.close()
    raise RuntimeError("no free local port range found")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", default=None, help="nccl (GPUs) or ring (CPUs); default by device"
    )
    parser.add_argument(
        "--device", choices=("cpu", "gpu"), default="gpu" if mx.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--ranks", default=None, help="comma list of world sizes (GPU 1,2,4; CPU 1,2)"
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="base")
    parser.add_argument("--batch", type=int, default=32, help="sequences per rank per step")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", default=None, help="compute dtype (GPU bfloat16, CPU float32)")
    parser.add_argument(
        "--reduce-dtype", default=None, help="dtype of the gradient all-reduce (default float32)"
    )
    parser.add_argument(
        "--comm-stream", action="store_true", help="all-reduce on a stream of its own"
    )
    parser.add_argument(
        "--overlap", action="store_true", help="all-reduce each layer inside the backward pass"
    )
    parser.add_argument(
        "--grad-reduce",
        choices=("bucketed", "none"),
        default="bucketed",
        help="none: no all-reduce inside the step (diagnostic: cost of side-by-side ranks)",
    )
    parser.add_argument(
        "--bucket-mib", type=float, default=None, help="all-reduce bucket size (MLX default 32)"
    )
    parser.add_argument(
        "--bind-cores", action="store_true", help="pin each rank to its own share of the cores"
    )
    parser.add_argument("--timeout", type=float, default=540, help="seconds per world size")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks-expected", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    from mlxbert_core.training.distributed import launch_command

    backend = args.backend or ("nccl" if args.device == "gpu" else "ring")
    ranks = [
        int(r) for r in (args.ranks or ("1,2,4" if args.device == "gpu" else "1,2")).split(",")
    ]
    if backend == "nccl":
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast off
    # Every NCCL_* setting of this process reaches every rank (and the report).
    nccl_env = (
        {k: v for k, v in os.environ.items() if k.startswith("NCCL_")}
        if backend == "nccl"
        else None
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in ranks:
            result = Path(tmp) / f"result-{n}.json"
            worker_args = [
                "--worker", "--device", args.device, "--model", args.model,
                "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
                "--warmup", str(args.warmup), "--ranks-expected", str(n), "--result", str(result),
            ]  # fmt: skip
            if args.dtype:
                worker_args += ["--dtype", args.dtype]
            if args.reduce_dtype:
                worker_args += ["--reduce-dtype", args.reduce_dtype]
            if args.comm_stream:
                worker_args += ["--comm-stream"]
            if args.overlap:
                worker_args += ["--overlap"]
            if args.bind_cores:
                worker_args += ["--bind-cores"]
            if args.grad_reduce != "bucketed":
                worker_args += ["--grad-reduce", args.grad_reduce]
            if args.bucket_mib is not None:
                worker_args += ["--bucket-mib", str(args.bucket_mib)]
            if n == 1:
                argv = [sys.executable, str(Path(__file__).resolve()), *worker_args]
            else:
                argv = launch_command(
                    str(Path(__file__).resolve()),
                    n,
                    backend=backend,
                    starting_port=free_port(n) if backend == "ring" else None,
                    nccl_port=free_port(1) if backend == "nccl" else None,
                    env=nccl_env,
                    script_args=worker_args,
                )
            env = dict(os.environ)
            if args.device == "cpu" and "OPENBLAS_NUM_THREADS" not in env:
                # ranks share the cores; oversubscribed OpenBLAS threads spin against each other
                env["OPENBLAS_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
            print(f"--- {n} rank(s): {' '.join(argv)}", flush=True)
            proc = subprocess.Popen(argv, start_new_session=True, env=env)
            try:
                proc.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                print(f"{n} rank(s): timed out after {args.timeout}s", flush=True)
                continue
            if proc.returncode != 0 or not result.exists():
                print(f"{n} rank(s): failed (exit {proc.returncode})", flush=True)
                continue
            results.append(json.loads(result.read_text()))
            r = results[-1]
            print(
                f"{n} rank(s): {r['seq_per_s']:.1f} seq/s, {r['step_ms']:.1f} ms/step "
                f"(per rank before the final barrier: {r['per_rank_step_ms']})",
                flush=True,
            )

    base = next((r for r in results if r["ranks"] == 1), None)
    for r in results:
        if base:
            r["speedup"] = r["seq_per_s"] / base["seq_per_s"]
            r["efficiency"] = r["speedup"] / r["ranks"]
    report = {
        "backend": backend,
        "device": args.device,
        "model": args.model,
        "per_rank_batch": args.batch,
        "seq": args.seq,
        "grad_reduce_dtype": args.reduce_dtype or "float32",
        "communication_stream": args.comm_stream,
        "overlap_grad_reduce": args.overlap,
        "grad_reduce": args.grad_reduce,
        "bucket_mib": args.bucket_mib,
        "bind_cores": args.bind_cores,
        "nccl_nvls_enable": os.environ.get("NCCL_NVLS_ENABLE") if backend == "nccl" else None,
        "nccl_env": nccl_env,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0 if len(results) == len(ranks) else 1


if __name__ == "__main__":
    sys.exit(main())
