"""Fine-tune a model on one GLUE task with the task's default recipe.

Each seed runs through the task-model layer's fit loop (:func:`mlxbert_glue.fit`: evaluation
after every epoch, the best epoch kept, exact resume); this module adds what a GLUE run needs
around it: the recipe, the task's metrics, several seeds, the plan printed up front, the
output folder's checks, and a JSON summary.

Output folder layout::

    OUTPUT/                    the best model over all seeds (a complete task-model folder:
                               config.json, model.safetensors, tokenizer.json, mlxbert.json)
    OUTPUT/finetune.json       recipe, per-seed results, mean and spread over seeds
    OUTPUT/runs/seed-N/log.json      per-epoch loss, metrics, seconds
    OUTPUT/runs/seed-N/best/         the best seed's best epoch (a task-model folder); every
                                     seed's with ``keep_all``
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

from .data import GlueExamples, load_task
from .factory import create_model_and_tokenizer
from .metrics import compute_metrics, predictions_from_logits, task_score
from .recipes import Recipe, default_recipe
from .task_model import (
    Examples,
    Reporter,
    StaleRunError,
    fit,
    get_reporter,
    read_json,
    write_json,
)
from .tasks import GlueTask, get_task

SUMMARY_FILE = "finetune.json"


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
    checkpoint: str | None = None,
    lora: Any = None,
    quantize: int | None = None,
    pooling: str | None = None,
    dtype: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
    keep_all: bool = False,
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
        checkpoint: the checkpoint file to start from when ``model``'s folder holds several
            (M2-BERT's Composer ``.pt``, ``pytorch_model.bin``, ``model.safetensors``).
        init_from: a fine-tuned model folder (for example an MNLI model) whose encoder
            weights start this run, as the recipe does for RTE, MRPC and STS-B. Its
            classifier is not used.
        lora: a LoRA preset name (``efficient``, ``balanced``, …) or ``LoraConfig``; needs
            ``mlxbert-glue[lora]``. The saved model has the adapters merged.
        quantize: 4 or 8 to train on a quantized base (QLoRA, with ``lora``); needs
            ``mlxbert-glue[quant]``.
        max_train_samples / max_eval_samples: use the first N examples (quick runs).
        resume: continue an interrupted run in ``output_dir`` (finished seeds are reused, an
            unfinished one continues after its last finished epoch) -- only a run of the same
            task, model, recipe and data; a finished run is returned as it is.
        overwrite: replace whatever ``output_dir`` holds. Without it (or ``resume`` on a run
            of the same settings), a non-empty ``output_dir`` is refused.
        keep_all: keep every seed's best model under ``runs/seed-N/best`` (default: only the
            best seed's; the others' logs stay).
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
    for name, value in (
        ("max_train_samples", max_train_samples),
        ("max_eval_samples", max_eval_samples),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    reporter = get_reporter(progress)
    # Everything is read and checked before the output folder is touched.
    train_ex = load_task(t, data_dir, "train").subset(max_train_samples)
    dev_ex = load_task(t, data_dir, "dev").subset(max_eval_samples)
    source = str(init_from) if init_from is not None else str(model)
    model_kwargs = {"lora": lora, "quantize": quantize, "dtype": dtype, "pooling": recipe.pooling}
    if checkpoint is not None and init_from is None:
        model_kwargs["checkpoint"] = checkpoint
    run_settings = {
        "task": t.name,
        "model": str(model),
        "init_from": None if init_from is None else str(init_from),
        "checkpoint": checkpoint,
        "recipe": recipe.to_dict(),
        "train_examples": len(train_ex),
        "dev_examples": len(dev_ex),
    }
    output = Path(output_dir)
    previous = _claim_output(output, run_settings, resume=resume, overwrite=overwrite)
    if previous is not None:
        reporter.log(f"GLUE {t.name}: already finished in {output}, reusing it")
        return previous
    steps = -(-len(train_ex) // recipe.batch_size)
    reporter.log(
        f"GLUE {t.name}: {len(recipe.seeds)} seed(s) x {recipe.epochs} epoch(s) x {steps} "
        f"steps of {recipe.batch_size} ({len(train_ex)} training, {len(dev_ex)} dev examples); "
        + ("every seed's best model is kept" if keep_all else "the best seed's model is kept")
    )

    started = time.perf_counter()
    created = not output.exists()
    try:
        runs = [
            _run_seed(
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
            for seed in recipe.seeds
        ]
    except (KeyboardInterrupt, StaleRunError):
        raise
    except BaseException:
        if created:  # a run that failed before finishing leaves nothing it made
            shutil.rmtree(output, ignore_errors=True)
        raise

    best_run = max(runs, key=lambda r: r["best"]["score"])
    _copy_model_folder(output / "runs" / f"seed-{best_run['seed']}" / "best", output)
    if not keep_all:
        for run in runs:
            if run["seed"] != best_run["seed"]:
                shutil.rmtree(output / "runs" / f"seed-{run['seed']}" / "best", ignore_errors=True)
    mean = {name: statistics.fmean(r["best"]["metrics"][name] for r in runs) for name in t.metrics}
    spread = {
        name: (
            statistics.stdev([r["best"]["metrics"][name] for r in runs]) if len(runs) > 1 else 0.0
        )
        for name in t.metrics
    }
    summary = {
        **run_settings,
        "runs": [{"seed": r["seed"], "best": r["best"], "epochs": r["epochs"]} for r in runs],
        "mean": mean,
        "std": spread,
        "mean_score": float(np.mean([r["best"]["score"] for r in runs])),
        "best_seed": best_run["seed"],
        "model_dir": str(output),
        "seconds": time.perf_counter() - started,
        "finished": True,
    }
    write_json(output / SUMMARY_FILE, summary)
    return summary


def _claim_output(
    output: Path, settings: dict[str, Any], *, resume: bool, overwrite: bool
) -> dict[str, Any] | None:
    """Check the output folder before a run: empty, or (``resume``) a run of the same
    settings -- whose summary is returned when it finished -- or replaced (``overwrite``)."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"output {output} is a file, not a folder")
    if not output.is_dir() or not any(output.iterdir()):
        return None
    if overwrite:
        shutil.rmtree(output)
        return None
    previous = read_json(output / SUMMARY_FILE)
    is_run = previous is not None or (output / "runs").is_dir()
    if not (resume and is_run):
        what = "another run" if is_run else "files"
        raise ValueError(
            f"output {output} already holds {what}; pass overwrite=True (--overwrite) to "
            "replace it" + ("" if is_run else ", or choose an empty folder")
        )
    if previous is not None:
        old = {k: previous.get(k) for k in settings}
        if _jsonable(old) != _jsonable(settings):
            changed = [
                f"{k} ({old[k]!r} -> {settings[k]!r})"
                for k in settings
                if _jsonable(old[k]) != _jsonable(settings[k])
            ]
            raise StaleRunError(
                f"output {output} holds a GLUE run with other settings: {'; '.join(changed)}; "
                "use the same settings to reuse it, or --overwrite to replace it"
            )
        if previous.get("finished"):
            return previous
    return None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["finetune"]
