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

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import GlueExamples, load_task
from .factory import create_model_and_tokenizer
from .metrics import compute_metrics, predictions_from_logits, task_score
from .recipes import Recipe, default_recipe
from .task_model import Examples, Reporter, fit, get_reporter, write_json
from .tasks import GlueTask, get_task


def _copy_model_folder(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file():
            shutil.copy2(item, dst / item.name)
        elif item.is_dir():
            shutil.copytree(item, dst / item.name, dirs_exist_ok=True)


def _examples(split: GlueExamples) -> Examples:
    return Examples(split.texts, split.pairs, split.labels)


def glue_scorer(task: GlueTask, labels: np.ndarray):
    """``scorer(head, outputs)`` for the fit loop: the task's metrics and, as ``score``, its
    GLUE score (the selection metric)."""

    def scorer(head: Any, outputs: np.ndarray) -> dict[str, float]:
        if task.is_regression:
            predictions = np.asarray(head.predict(outputs), dtype=np.float64)
        else:
            predictions = predictions_from_logits(task, outputs)
        metrics = compute_metrics(task, predictions, labels)
        return {"score": task_score(task, metrics), **metrics}

    return scorer


def _run_seed(
    *,
    task: GlueTask,
    source: str,
    data: tuple[GlueExamples, GlueExamples],
    recipe: Recipe,
    seed: int,
    run_dir: Path,
    model_kwargs: dict[str, Any],
    resume: bool,
    reporter: Reporter,
) -> dict[str, Any]:
    train_ex, dev_ex = data
    result = fit(
        lambda: create_model_and_tokenizer(source, task.name, **model_kwargs),
        _examples(train_ex),
        _examples(dev_ex),
        training=recipe.training_config(seed),
        model_dir=run_dir / "best",
        work_dir=run_dir,
        max_length=recipe.max_length,
        scorer=glue_scorer(task, dev_ex.labels),
        metric="score",
        eval_batch_size=recipe.eval_batch_size,
        settings={
            "task": task.name,
            "source": source,
            "recipe": recipe.to_dict(),
            "model": {k: str(v) for k, v in model_kwargs.items()},
        },
        resume=resume,
        reporter=reporter,
        label=f"{task.name} seed {seed}",
    )
    best = result.best
    return {
        "seed": seed,
        "best": {"epoch": best["epoch"], "score": best["score"], "metrics": _task_metrics(best)},
        "epochs": [{**e, "metrics": _task_metrics(e)} for e in result.epochs],
    }


def _task_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """An epoch's metrics without the GLUE score the scorer adds for selection."""
    return {k: v for k, v in (entry.get("metrics") or {}).items() if k != "score"}


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
    progress: bool | Reporter = True,
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
        progress: progress bars and a line per epoch (True: tqdm), or a ``Reporter``.
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
    reporter = get_reporter(progress)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    train_ex = load_task(t, data_dir, "train").subset(max_train_samples)
    dev_ex = load_task(t, data_dir, "dev").subset(max_eval_samples)
    source = str(init_from) if init_from is not None else str(model)
    model_kwargs = {"lora": lora, "quantize": quantize, "dtype": dtype, "pooling": recipe.pooling}

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
            reporter=reporter,
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
    write_json(output / "finetune.json", summary)
    return summary
