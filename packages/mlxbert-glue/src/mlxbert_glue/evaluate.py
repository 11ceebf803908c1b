"""GLUE evaluation of a saved task model, with JSON/Markdown reports."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import load_task
from .metrics import compute_metrics, glue_score, predictions_from_logits, task_score
from .submission import write_submission
from .task_model import (
    Examples,
    encode_examples,
    open_task_model,
    pad_id_of,
    predict_logits,
    write_json,
    write_text,
)
from .tasks import TASKS, get_task


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# GLUE {result['task']} ({result['split']})",
        "",
        f"- model: `{result['model_dir']}`",
        f"- examples: {result['num_examples']}",
        f"- time: {result['seconds']:.1f} s ({result['examples_per_second']:.1f} examples/s)",
        "",
    ]
    if result.get("metrics"):
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {100 * v:.2f} |" for k, v in result["metrics"].items()]
        lines += [f"| **score** | **{100 * result['score']:.2f}** |", ""]
    for path in result.get("submission_files", []):
        lines.append(f"- predictions: `{path}`")
    return "\n".join(lines) + "\n"


def _markdown_all(result: dict[str, Any]) -> str:
    glue = result["glue"]
    lines = [f"# GLUE ({result['split']})", ""]
    score = f"{100 * glue['score']:.2f}" if glue["score"] is not None else "n/a"
    complete = "all nine tasks" if glue["complete"] else f"missing: {', '.join(glue['missing'])}"
    lines += [f"**GLUE score: {score}** ({complete})", ""]
    lines += ["| task | model | metrics | score |", "| --- | --- | --- | ---: |"]
    for name, task in result["tasks"].items():
        shown = ", ".join(f"{k} {100 * v:.2f}" for k, v in task["metrics"].items())
        lines.append(
            f"| {name} | `{task['model_dir']}` | {shown} | {100 * (task['score'] or 0):.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(result: dict[str, Any], report: str | Path) -> tuple[Path, Path]:
    """Write ``report`` (JSON) and the same name with ``.md`` (Markdown)."""
    json_path = Path(report)
    md_path = json_path.with_suffix(".md")
    write_json(json_path, result)
    write_text(md_path, _markdown_all(result) if "glue" in result else _markdown(result))
    return json_path, md_path


def evaluate(
    model_dir: str | Path,
    task: str,
    data_dir: str | Path,
    split: str = "dev",
    report: str | Path | None = None,
    *,
    batch_size: int = 64,
    max_samples: int | None = None,
    submission_dir: str | Path | None = None,
    progress: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Evaluate a saved task model on a GLUE split.

    Labeled splits (``dev``) give the task's metrics and GLUE score; MNLI's ``dev`` covers
    matched and mismatched (``accuracy_m``/``accuracy_mm``). Unlabeled splits (``test``)
    write GLUE submission files (``CoLA.tsv`` …) into ``submission_dir`` (default: next to
    the report, else the model folder). ``report`` names a JSON file; a Markdown twin is
    written next to it. A model trained for another task is refused unless ``force``.
    """
    t = get_task(task)
    started = time.perf_counter()
    model, tokenizer, info = open_task_model(model_dir)
    if info.num_labels != t.num_labels:
        raise ValueError(
            f"{model_dir} was trained for {info.task!r} with {info.num_labels} "
            f"outputs; GLUE {t.name} needs {t.num_labels}"
        )
    if info.task != t.name and not force:
        raise ValueError(
            f"{model_dir} was trained for {info.task!r}, not GLUE {t.name}; evaluate it on "
            f"{info.task!r}, or pass force=True (--force) to score it on {t.name} anyway"
        )
    max_length = info.tokens
    pad_id = pad_id_of(tokenizer)

    metrics: dict[str, float] = {}
    files: list[str] = []
    total = 0
    for part in t.eval_splits(split):
        examples = load_task(t, data_dir, part).subset(max_samples)
        total += len(examples)
        features = encode_examples(
            tokenizer, Examples(examples.texts, examples.pairs), max_length=max_length
        )
        logits = predict_logits(model, features, batch_size=batch_size, pad_id=pad_id)
        if t.is_regression and hasattr(model.head, "predict"):
            predictions = np.asarray(model.head.predict(logits), dtype=np.float64)
        else:
            predictions = predictions_from_logits(t, logits)
        if examples.labels is None:
            out_dir = submission_dir or (Path(report).parent if report else Path(model_dir))
            files.append(str(write_submission(t, examples.ids, predictions, out_dir, part)))
            continue
        part_metrics = compute_metrics(t, predictions, examples.labels)
        if t.name == "mnli" and split == "dev":
            suffix = "_m" if part == "dev" else "_mm"
            part_metrics = {f"{k}{suffix}": v for k, v in part_metrics.items()}
        metrics.update(part_metrics)

    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "task": t.name,
        "split": split,
        "model_dir": str(model_dir),
        "num_examples": total,
        "metrics": metrics,
        "score": task_score(t, metrics) if metrics else None,
        "seconds": seconds,
        "examples_per_second": total / seconds if seconds > 0 else 0.0,
    }
    if files:
        result["submission_files"] = files
    if report is not None:
        write_reports(result, report)
    return result


def task_models(models: str | Path | Mapping[str, str | Path], tasks: str | Sequence[str]):
    """{GLUE task: model folder} for ``evaluate_tasks``: ``models`` maps tasks to folders, or
    is one folder holding a model folder per task (named after the task: ``sst2/``, or its
    GLUE folder name: ``SST-2/``). ``tasks``: ``"all"`` (every task that has a model there),
    a list, or comma-separated names."""
    if isinstance(tasks, str) and tasks.strip().lower() != "all":
        tasks = [t for t in tasks.split(",") if t.strip()]
    if isinstance(models, Mapping):
        found = {get_task(name).name: Path(path) for name, path in models.items()}
    else:
        root = Path(models)
        if not root.is_dir():
            raise FileNotFoundError(f"model folder {root} does not exist")
        found = {}
        for task in TASKS.values():
            for name in (task.name, task.dir_name):
                if (root / name / "mlxbert.json").is_file():
                    found[task.name] = root / name
                    break
    if isinstance(tasks, str):  # "all"
        if not found:
            raise FileNotFoundError(
                f"no task model folders in {models} (expected e.g. {Path(str(models)) / 'sst2'})"
            )
        return found
    wanted = [get_task(t).name for t in tasks]
    missing = [t for t in wanted if t not in found]
    if missing:
        raise FileNotFoundError(f"no model folder for {', '.join(missing)} in {models}")
    return {t: found[t] for t in wanted}


def evaluate_tasks(
    models: str | Path | Mapping[str, str | Path],
    data_dir: str | Path,
    tasks: str | Sequence[str] = "all",
    split: str = "dev",
    report: str | Path | None = None,
    *,
    batch_size: int = 64,
    max_samples: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Evaluate several GLUE tasks, each with its own model folder (see
    :func:`task_models`), into one report: per-task metrics and the GLUE score
    (``glue_score``; ``complete`` only with all nine tasks). ``report`` names the JSON
    file; a Markdown table is written next to it."""
    chosen = task_models(models, tasks)
    started = time.perf_counter()
    results = {
        name: evaluate(
            folder,
            name,
            data_dir,
            split,
            batch_size=batch_size,
            max_samples=max_samples,
            force=force,
        )
        for name, folder in chosen.items()
    }
    scored = {name: r["metrics"] for name, r in results.items() if r["metrics"]}
    glue = (
        glue_score(scored)
        if scored
        else {"score": None, "complete": False, "missing": list(TASKS), "task_scores": {}}
    )
    result = {
        "split": split,
        "tasks": results,
        "glue": glue,
        "seconds": time.perf_counter() - started,
    }
    if report is not None:
        write_reports(result, report)
    return result
