"""The report's sections, each from the run summary: what it says, its tables and figures.

A section whose data the run does not have is left out, with a line saying why (under
"Notes"), never drawn from anything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import analysis, figures
from .html import Section, paragraph, table
from .summary import CLASSIFICATION, Predictions, RunSummary


def _agreement(counted: dict[str, float], reference: dict[str, float], source: str) -> str:
    """A table: each number counted from the predictions next to the run's own."""
    shared = [k for k in counted if k in reference]
    if not shared:
        return paragraph(f"(no metric of {source} to compare with)", "note")
    rows = [[k, counted[k], reference[k]] for k in shared]
    equal = all(
        abs(counted[k] - reference[k]) <= 1e-6 * max(1.0, abs(reference[k])) for k in shared
    )
    verdict = paragraph(
        "these equal the run's metrics file"
        if equal
        else "these differ from the run's metrics file",
        "ok" if equal else "bad",
    )
    headers = ["metric", "counted from these predictions", source]
    return table(headers, rows, name="agreement") + verdict


def overview(run: RunSummary) -> Section:
    rows = [[k, v] for k, v in run.metrics.items()]
    blocks = [
        paragraph(run.metrics_source, "note"),
        table(["metric", "value"], rows, name="metrics"),
    ]
    if run.notes:
        blocks.append(
            "<ul>" + "".join(f"<li>{paragraph(n, 'note')}</li>" for n in run.notes) + "</ul>"
        )
    return Section("scores", "Scores", blocks)


def learning(run: RunSummary) -> Section | None:
    if not run.curves:
        return None
    metric = next((c.metric for c in run.curves if c.metric), None)
    rows, best = [], []
    for c in run.curves:
        for i, epoch in enumerate(c.epochs):
            rows.append(
                [c.name, epoch, c.loss[i], c.scores[i], c.learning_rate[i], c.train_seconds[i],
                 c.eval_seconds[i]]
            )  # fmt: skip
            best.append(epoch == c.best_epoch)
    headers = ["fit", "epoch", "loss", metric or "score", "learning rate", "train s", "eval s"]
    caption = "loss and validation metric per epoch, one line per fit; ★ the kept (best) epoch"
    return Section(
        "curves",
        "Learning curves",
        [table(headers, rows, name="epochs", highlight=best)],
        [("learning_curves", figures.learning_curves(run.curves, metric), caption)],
    )


def parts(run: RunSummary) -> Section | None:
    if not run.parts:
        return None
    names = list(run.parts[0].metrics)
    rows = [[p.name, p.best_epoch, p.rows, *(p.metrics.get(n) for n in names)] for p in run.parts]
    if run.part_mean:
        rows.append(["mean", None, None, *(run.part_mean.get(n) for n in names)])
        rows.append(["std", None, None, *(run.part_std.get(n) for n in names)])
    headers = ["fit", "best epoch", "rows", *names]
    metric = run.metric if run.metric in names else names[0]
    fig = figures.part_scores(
        run.parts, metric, run.part_mean.get(metric), run.part_std.get(metric)
    )
    return Section(
        "parts",
        run.parts_title,
        [table(headers, rows, name="parts")],
        [("fold_scores", fig, f"{metric} of each fit's best epoch, with the mean ± std")],
    )


def classes(pred: Predictions) -> Section | None:
    if pred.task not in (*CLASSIFICATION, "multilabel"):
        return None
    blocks = [paragraph(f"From the {pred.source}: {len(pred)} rows.", "note")]
    shown: list[tuple[str, Any, str]] = []
    if pred.task in CLASSIFICATION:
        cm = analysis.confusion_matrix(pred.truth, pred.predicted, len(pred.labels))
        rows = [[name, *map(int, row)] for name, row in zip(pred.labels, cm)]
        headers = ["true \\ predicted", *pred.labels]
        blocks.append(table(headers, rows, name="confusion"))
        shown.append(("confusion_matrix", figures.confusion(cm, pred.labels), "confusion matrix"))
        blocks.append(
            _agreement(analysis.decision_metrics(pred), pred.reference, pred.reference_source)
        )
    else:
        blocks.append(
            paragraph("Multilabel: one row per label (no single confusion matrix).", "note")
        )
    per = analysis.class_table(pred)
    rows = [[r["label"], r["precision"], r["recall"], r["f1"], r["support"]] for r in per]
    blocks.append(table(["class", "precision", "recall", "F1", "support"], rows, name="per_class"))
    shown.append(("per_class", figures.class_bars(per), "precision, recall and F1 per class"))
    return Section("classes", "Classes: confusion matrix and per-class scores", blocks, shown)


def calibration(pred: Predictions) -> Section | None:
    cal = analysis.calibration(pred)
    if cal is None:
        return None
    rows = [[c.name, c.ece, int(c.counts.sum())] for c in cal.curves]
    blocks = [table(["probabilities", "ECE", "rows"], rows, name="calibration")]
    if cal.temperatures:
        shown = ", ".join(f"{t:.4g}" for t in cal.temperatures)
        blocks.append(paragraph(f"temperature(s): {shown}", "note"))
    if cal.note:
        blocks.append(paragraph(cal.note, "note"))
    caption = (
        "reliability diagram: predicted probability against observed frequency "
        f"({cal.kind}), before and after calibration; ECE = expected calibration error"
    )
    return Section(
        "calibration", "Calibration", blocks, [("reliability", figures.reliability(cal), caption)]
    )


def thresholds(pred: Predictions) -> Section | None:
    if pred.task != "binary":
        return None
    curve = analysis.threshold_curve(pred)
    if curve is None:
        note = "No decision threshold was fitted: every model decides at P(positive) >= 0.5."
        return Section("threshold", "Decision threshold", [paragraph(note, "note")])
    at = [float(curve.f1[np.argmin(np.abs(curve.thresholds - t))]) for t in curve.fitted.values()]
    rows = [[name, t, f1] for (name, t), f1 in zip(curve.fitted.items(), at)]
    return Section(
        "threshold",
        "Decision threshold",
        [table(["fit", "fitted threshold", "F1 here"], rows, name="thresholds")],
        [("threshold", figures.threshold(curve), "precision, recall and F1 against the threshold")],
    )


def regression(pred: Predictions) -> Section | None:
    if pred.task != "regression":
        return None
    counted = analysis.regression_metrics(pred)
    blocks = [
        paragraph(f"From the {pred.source}: {len(pred)} rows.", "note"),
        _agreement(counted, pred.reference, pred.reference_source),
    ]
    caption = "predicted against true values; residuals" + (
        " on log(1 + y), the scale the run trained and is scored on" if pred.scale else ""
    )
    return Section(
        "regression",
        "Regression: predicted vs true, residuals",
        blocks,
        [("regression", figures.regression(pred), caption)],
    )


def errors(pred: Predictions) -> Section:
    rows = analysis.confident_errors(pred)
    title = "Largest errors" if pred.task == "regression" else "Most confident errors"
    if not rows:
        return Section("errors", title, [paragraph("No wrong predictions.", "note")])
    kind = "error" if pred.task == "regression" else "confidence"
    headers = ["row", "id", "true", "predicted", kind, "text"]
    body = [[r["row"], r["id"], r["truth"], r["predicted"], r[kind], r["text"]] for r in rows]
    what = (
        "largest absolute errors (training scale)"
        if pred.task == "regression"
        else "wrong predictions made with the highest probability"
    )
    return Section(
        "errors",
        title,
        [paragraph(f"The {len(rows)} {what}.", "note"), table(headers, body, name="errors")],
    )


def settings(run: RunSummary) -> Section:
    blocks = [
        table(
            ["setting", "value"], [[k, _plain(v)] for k, v in run.settings.items()], name="settings"
        ),
        table(["timing", "value"], [[k, v] for k, v in run.timings.items()], name="timings"),
    ]
    return Section("settings", "Run settings and timings", blocks)


def _plain(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return str(value)
    return value


def build(run: RunSummary) -> list[Section]:
    """Every section the run's files support, in reading order."""
    out = [overview(run), learning(run), parts(run)]
    pred = run.predictions
    if pred is not None:
        out += [classes(pred), calibration(pred), thresholds(pred), regression(pred), errors(pred)]
    out.append(settings(run))
    return [s for s in out if s is not None]


__all__ = ["build"]
