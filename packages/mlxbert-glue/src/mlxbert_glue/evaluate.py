"""GLUE evaluation of a saved task model, with JSON/Markdown reports."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import load_task
from .metrics import compute_metrics, predictions_from_logits, task_score
from .submission import write_submission
from .task_model import Examples, encode_examples, open_task_model, pad_id_of, predict_logits
from .tasks import get_task


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


def write_reports(result: dict[str, Any], report: str | Path) -> tuple[Path, Path]:
    """Write ``report`` (JSON) and the same name with ``.md`` (Markdown)."""
    json_path = Path(report)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md_path = json_path.with_suffix(".md")
    md_path.write_text(_markdown(result), encoding="utf-8")
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
