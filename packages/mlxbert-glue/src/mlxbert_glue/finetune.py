"""Fine-tune a model on one GLUE task with the task's default recipe.

The training loop is the core engine's (:class:`mlxbert_core.training.Trainer`); this module
adds what a GLUE run needs around it: the recipe, evaluation after every epoch, keeping the
best epoch, several seeds, resuming after an interruption, and a JSON log.

Output folder layout::

    OUTPUT/                    the best model over all seeds (a complete task-model folder:
                               config.json, model.safetensors, tokenizer.json, mlxbert.json)
    OUTPUT/finetune.json       recipe, per-seed results, mean and spread over seeds
    OUTPUT/runs/seed-N/log.json      per-epoch loss, metrics, seconds
    OUTPUT/runs/seed-N/best/         that seed's best epoch (a task-model folder)
    OUTPUT/runs/seed-N/state/        trainer state after the last finished epoch (resume)
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import load_task
from .evaluate import predict_logits
from .factory import create_model_and_tokenizer
from .features import effective_max_length, encode_examples, pad_id_of
from .metrics import compute_metrics, predictions_from_logits, task_score
from .model_io import save_task_model
from .recipes import Recipe, default_recipe
from .tasks import get_task

_MODEL_FILES = ("config.json", "model.safetensors", "mlxbert.json")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # never leave a half-written log behind


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _copy_model_folder(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file():
            shutil.copy2(item, dst / item.name)
        elif item.is_dir():
            shutil.copytree(item, dst / item.name, dirs_exist_ok=True)


def _training_config(recipe: Recipe, seed: int):
    from mlxbert_core.training import TrainingConfig

    return TrainingConfig(
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_ratio=recipe.warmup_ratio,
        schedule=recipe.schedule,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        grad_accum_steps=recipe.grad_accum_steps,
        max_grad_norm=recipe.max_grad_norm,
        adam_betas=tuple(recipe.adam_betas),
        adam_eps=recipe.adam_eps,
        compute_dtype=recipe.compute_dtype,
        gradient_checkpointing=recipe.gradient_checkpointing,
        compile=recipe.compile,
        seed=seed,
    )


def _loss_fn(model, batch):
    return model.loss(batch)


def _run_seed(
    *,
    task,
    source: str,
    data,
    recipe: Recipe,
    seed: int,
    run_dir: Path,
    model_kwargs: dict[str, Any],
    resume: bool,
    progress: bool,
) -> dict[str, Any]:
    from mlxbert_core.training import Trainer, batch_iterator

    log_path = run_dir / "log.json"
    state_dir = run_dir / "state"
    best_dir = run_dir / "best"
    log = _read_json(log_path) if resume else None
    if log is not None and log.get("finished") and (best_dir / "mlxbert.json").is_file():
        return log  # this seed is done
    if log is None or log.get("recipe") != recipe.to_dict() or log.get("source") != source:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        log = {"seed": seed, "source": source, "recipe": recipe.to_dict(), "epochs": []}

    import mlx.core as mx

    mx.random.seed(seed)  # the new head's initialisation is part of the seed's run
    model, tokenizer, info = create_model_and_tokenizer(source, task, **model_kwargs)
    train_ex, dev_ex = data
    max_length = effective_max_length(recipe.max_length, info.config)
    features = encode_examples(tokenizer, train_ex, max_length=max_length)
    dev_features = encode_examples(tokenizer, dev_ex, max_length=max_length)
    pad_id = pad_id_of(tokenizer)
    batches = batch_iterator(
        features, recipe.batch_size, shuffle=True, seed=seed, bucket_by_length=True, pad_id=pad_id
    )
    cfg = _training_config(recipe, seed)
    model.train()
    trainer = Trainer(model, _loss_fn, cfg, total_steps=cfg.optimizer_steps(len(batches)))

    start_epoch = 0
    if log["epochs"] and (state_dir / "trainer_state.json").is_file():
        extra = trainer.load_state(state_dir)
        start_epoch = int(extra.get("epochs_done", 0))
        log["epochs"] = log["epochs"][:start_epoch]
    best = log.get("best")

    for epoch in range(start_epoch, recipe.epochs):
        batches.set_epoch(epoch)
        model.train()
        stats = trainer.train_epoch(
            batches, progress=progress, desc=f"{task.name} seed {seed} epoch {epoch + 1}"
        )
        eval_start = time.perf_counter()
        logits = predict_logits(
            model, dev_features, batch_size=recipe.eval_batch_size, pad_id=pad_id
        )
        if task.is_regression:
            predictions = np.asarray(model.head.predict(logits), dtype=np.float64)
        else:
            predictions = predictions_from_logits(task, logits)
        metrics = compute_metrics(task, predictions, dev_ex.labels)
        score = task_score(task, metrics)
        entry = {
            "epoch": epoch + 1,
            "loss": stats["loss"],
            "metrics": metrics,
            "score": score,
            "train_seconds": stats["seconds"],
            "eval_seconds": time.perf_counter() - eval_start,
            "samples_per_s": stats["samples_per_s"],
            "learning_rate": stats["learning_rate"],
        }
        log["epochs"].append(entry)
        if best is None or score > best["score"]:
            best = {"epoch": epoch + 1, "score": score, "metrics": metrics}
            save_task_model(model, tokenizer, best_dir, info=info, max_length=max_length)
        log["best"] = best
        # Order matters for resuming: the state first, then the log that points at it.
        trainer.save_state(state_dir, extra={"epochs_done": epoch + 1})
        _write_json(log_path, log)
        if progress:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            print(f"{task.name} seed {seed} epoch {epoch + 1}: loss {stats['loss']:.4f}, {shown}")

    log["finished"] = True
    _write_json(log_path, log)
    shutil.rmtree(state_dir, ignore_errors=True)  # the best model is kept; state is not
    return log


def finetune(
    task: str,
    model: str,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    learning_rate: float | None = None,
    weight_decay: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    warmup_ratio: float | None = None,
    grad_accum_steps: int | None = None,
    compute_dtype: str | None = None,
    gradient_checkpointing: bool | None = None,
    compile: bool | None = None,
    seeds: list[int] | tuple[int, ...] | int | None = None,
    init_from: str | Path | None = None,
    lora: Any = None,
    quantize: int | None = None,
    pooling: str | None = None,
    dtype: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``model`` on GLUE ``task``; returns the summary written to finetune.json.

    Args:
        task: GLUE task name (``sst2``, ``mrpc``, …).
        model: preset name (see :data:`mlxbert_glue.MODELS`), local folder or hub id.
        data_dir: GLUE root folder (holding ``SST-2/``, …) or the task's own folder.
        output_dir: where the best model and the logs go (see the module docstring).
        learning_rate … compile: override the task's default recipe
            (:data:`mlxbert_glue.RECIPES`); ``None`` keeps the default.
        seeds: one seed or several; default: the recipe's seeds (several for small tasks).
        init_from: a fine-tuned model folder (for example an MNLI model) whose encoder
            weights start this run, as the recipe does for RTE, MRPC and STS-B. Its
            classifier is not used.
        lora: a LoRA preset name (``efficient``, ``balanced``, …) or ``LoraConfig``; needs
            ``mlxbert-glue[lora]``. The saved model has the adapters merged.
        quantize: 4 or 8 to train on a quantized base (QLoRA, with ``lora``); needs
            ``mlxbert-glue[quant]``.
        max_train_samples / max_eval_samples: use the first N examples (quick runs).
        resume: continue an interrupted run in ``output_dir`` (finished seeds are skipped, an
            unfinished one continues after its last finished epoch).
        progress: progress bars and a line per epoch.
    """
    t = get_task(task)
    recipe = default_recipe(
        t.name,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        warmup_ratio=warmup_ratio,
        grad_accum_steps=grad_accum_steps,
        compute_dtype=compute_dtype,
        gradient_checkpointing=gradient_checkpointing,
        compile=compile,
        seeds=seeds,
        pooling=pooling,
    )
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    train_ex = load_task(t, data_dir, "train").subset(max_train_samples)
    dev_ex = load_task(t, data_dir, "dev").subset(max_eval_samples)
    source = str(init_from) if init_from is not None else str(model)
    model_kwargs = {"lora": lora, "quantize": quantize, "dtype": dtype, "pooling": recipe.pooling}
    if init_from is not None:
        model_kwargs["reinit_head"] = True

    started = time.perf_counter()
    runs = []
    for seed in recipe.seeds:
        run = _run_seed(
            task=t,
            source=source,
            data=(train_ex, dev_ex),
            recipe=recipe,
            seed=seed,
            run_dir=output / "runs" / f"seed-{seed}",
            model_kwargs=model_kwargs,
            resume=resume,
            progress=progress,
        )
        runs.append(run)

    best_run = max(runs, key=lambda r: r["best"]["score"])
    _copy_model_folder(output / "runs" / f"seed-{best_run['seed']}" / "best", output)
    mean = {name: statistics.fmean(r["best"]["metrics"][name] for r in runs) for name in t.metrics}
    spread = {
        name: (
            statistics.stdev([r["best"]["metrics"][name] for r in runs]) if len(runs) > 1 else 0.0
        )
        for name in t.metrics
    }
    summary = {
        "task": t.name,
        "model": str(model),
        "init_from": None if init_from is None else str(init_from),
        "recipe": recipe.to_dict(),
        "train_examples": len(train_ex),
        "dev_examples": len(dev_ex),
        "runs": [{"seed": r["seed"], "best": r["best"], "epochs": r["epochs"]} for r in runs],
        "mean": mean,
        "std": spread,
        "mean_score": float(np.mean([r["best"]["score"] for r in runs])),
        "best_seed": best_run["seed"],
        "model_dir": str(output),
        "seconds": time.perf_counter() - started,
    }
    _write_json(output / "finetune.json", summary)
    return summary
