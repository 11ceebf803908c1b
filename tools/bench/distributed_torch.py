"""The PyTorch reference for ``distributed.py``: DistributedDataParallel over NCCL, one process
per GPU, BERT-base (transformers ``BertForSequenceClassification``, SDPA attention), AMP bf16,
fused AdamW, the same per-rank batch and step count. Shows how well the *machine* scales, so
the MLX figures can be read against it.

    NCCL_NVLS_ENABLE=0 python tools/bench/distributed_torch.py --ranks 1,2,4 --batch 64 --seq 128

Each world size is a separate ``torchrun`` of this file with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args) -> None:
    import torch
    import torch.distributed as dist
    from transformers import BertConfig, BertForSequenceClassification

    rank = int(os.environ.get("RANK", 0))
    size = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    if size > 1:
        dist.init_process_group("nccl")
    torch.manual_seed(0)
    config = BertConfig(num_labels=2, attn_implementation="sdpa")
    model = BertForSequenceClassification(config).cuda()
    if size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)
    g = torch.Generator().manual_seed(rank)
    ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=g).cuda()
    labels = torch.randint(0, 2, (args.batch,), generator=g).cuda()
    mask = torch.ones_like(ids)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    if size > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    if size > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        Path(args.result).write_text(
            json.dumps(
                {
                    "ranks": size,
                    "seq_per_s": args.batch * size * args.steps / seconds,
                    "step_ms": 1000 * seconds / args.steps,
                    "loss": float(loss),
                }
            )
        )
    if size > 1:
        dist.destroy_process_group()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="1,2,4")
    parser.add_argument("--batch", type=int, default=64, help="sequences per rank per step")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(r) for r in args.ranks.split(",")]:
            result = Path(tmp) / f"result-{n}.json"
            worker_args = [
                "--worker", "--batch", str(args.batch), "--seq", str(args.seq),
                "--steps", str(args.steps), "--warmup", str(args.warmup), "--result", str(result),
            ]  # fmt: skip
            argv = [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={n}", str(Path(__file__).resolve()), *worker_args,
            ]  # fmt: skip
            print(f"--- {n} rank(s): {' '.join(argv)}", flush=True)
            proc = subprocess.run(argv, timeout=args.timeout)
            if proc.returncode != 0 or not result.exists():
                print(f"{n} rank(s): failed (exit {proc.returncode})", flush=True)
                continue
            r = json.loads(result.read_text())
            results.append(r)
            print(
                f"{n} rank(s): {r['seq_per_s']:.1f} seq/s, {r['step_ms']:.1f} ms/step", flush=True
            )
    base = next((r for r in results if r["ranks"] == 1), None)
    for r in results:
        if base:
            r["speedup"] = r["seq_per_s"] / base["seq_per_s"]
            r["efficiency"] = r["speedup"] / r["ranks"]
    report = {
        "framework": "pytorch-ddp",
        "per_rank_batch": args.batch,
        "seq": args.seq,
        "nccl_nvls_enable": os.environ.get("NCCL_NVLS_ENABLE"),
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
