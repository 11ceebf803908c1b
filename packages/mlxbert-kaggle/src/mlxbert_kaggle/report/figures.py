"""The report's figures, drawn with matplotlib (the ``report`` extra), one function per
section. Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no GUI
backend) and saved as PNG by the caller."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ..errors import InputError
from .analysis import Calibration, ThresholdCurve, regression_residuals
from .summary import FitCurve, PartScore, Predictions

INSTALL_HINT = "pip install 'mlxbert-kaggle[report]'"
MAX_CLASSES_SHOWN = 30
DPI = 100


class PlottingUnavailable(InputError):
    """matplotlib is not installed (the ``report`` extra)."""


def figure_class() -> Any:
    """``matplotlib.figure.Figure``, or :class:`PlottingUnavailable` with the install hint."""
    try:
        return importlib.import_module("matplotlib.figure").Figure
    except ImportError:
        raise PlottingUnavailable(
            f"the report's figures need matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def _figure(width: float, height: float, cols: int = 1, rows: int = 1):
    fig = figure_class()(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _log_scale(ax: Any, axes: str, low: float, high: float) -> None:
    """Log axes for a wide positive range (more than a decade), majors labelled only."""
    if low <= 0 or high / low <= 10:
        return
    plain = importlib.import_module("matplotlib.ticker").NullFormatter()
    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        ax.set(**{f"{name}scale": "log"})
        axis.set_minor_formatter(plain)


def learning_curves(curves: list[FitCurve], metric: str | None):
    """Loss and the task metric per epoch, one line per fold / seed, best epoch starred."""
    with_scores = metric is not None and any(s is not None for c in curves for s in c.scores)
    fig, axes = _figure(10 if with_scores else 5.5, 3.6, cols=2 if with_scores else 1)
    for i, curve in enumerate(curves):
        color = f"C{i % 10}"
        axes[0].plot(curve.epochs, curve.loss, "o-", color=color, label=curve.name, ms=4)
        if curve.best_epoch in curve.epochs:
            at = curve.epochs.index(curve.best_epoch)
            axes[0].plot(curve.best_epoch, curve.loss[at], "*", color=color, ms=14, mec="k")
            if with_scores and curve.scores[at] is not None:
                axes[1].plot(curve.best_epoch, curve.scores[at], "*", color=color, ms=14, mec="k")
        if with_scores:
            points = [(e, s) for e, s in zip(curve.epochs, curve.scores) if s is not None]
            if points:
                xs, ys = zip(*points)
                axes[1].plot(xs, ys, "o-", color=color, label=curve.name, ms=4)
    axes[0].set(title="training loss (mean over the epoch)", xlabel="epoch", ylabel="loss")
    if with_scores:
        axes[1].set(title=f"validation {metric} (★ best epoch)", xlabel="epoch", ylabel=metric)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[-1].legend(fontsize=8)
    return fig


def part_scores(parts: list[PartScore], metric: str, mean: float | None, std: float | None):
    """The selection metric of each fold / seed, with the mean and its spread."""
    fig, (ax,) = _figure(max(4.0, 1.0 + 0.8 * len(parts)), 3.2)
    values = [p.metrics.get(metric, np.nan) for p in parts]
    ax.bar([p.name for p in parts], values, color="C0", alpha=0.8)
    for x, v in enumerate(values):
        ax.annotate(f"{v:.4f}", (x, v), ha="center", va="bottom", fontsize=8)
    if mean is not None:
        ax.axhline(mean, color="k", lw=1, label=f"mean {mean:.4f}")
        if std:
            ax.axhspan(mean - std, mean + std, color="k", alpha=0.08, label=f"± {std:.4f}")
        ax.legend(fontsize=8, loc="lower right")
    finite = [v for v in values if np.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        pad = max(0.05 * abs(high), (high - low) or 0.01)
        ax.set_ylim(low - 2 * pad, high + pad)
    ax.set(ylabel=metric, title=f"{metric} per fit (best epoch)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def confusion(cm: np.ndarray, labels: list[str]):
    """Counts per (true, predicted) class, coloured by the share of the true class."""
    n = min(len(labels), MAX_CLASSES_SHOWN)
    cm, labels = cm[:n, :n], labels[:n]
    size = min(9.0, 2.5 + 0.5 * n)
    fig, (ax,) = _figure(size + 1.0, size)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= 15:
        for (i, j), count in np.ndenumerate(cm):
            color = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (counts; colour: row share)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def class_bars(table: list[dict[str, Any]]):
    """Precision, recall and F1 per class."""
    rows = table[:MAX_CLASSES_SHOWN]
    fig, (ax,) = _figure(max(5.0, 1.5 + 0.9 * len(rows)), 3.4)
    x = np.arange(len(rows))
    for k, name in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, [r[name] for r in rows], 0.27, label=name, color=f"C{k}")
    ax.set_xticks(x, [r["label"] for r in rows], rotation=45 if len(rows) > 6 else 0)
    ax.set(ylim=(0, 1.05), title="per class")
    ax.legend(fontsize=8, ncols=3, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def reliability(cal: Calibration):
    """Reliability diagram (before / after calibration) and how many predictions fall in each
    confidence bin."""
    fig, (ax, hist) = _figure(9.5, 4.0, cols=2)
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    width = 1.0 / len(cal.curves[0].counts)
    centers = (np.arange(len(cal.curves[0].counts)) + 0.5) * width
    for i, curve in enumerate(cal.curves):
        keep = curve.counts > 0
        ax.plot(
            curve.confidence[keep], curve.frequency[keep], "o-", color=f"C{i}",
            label=f"{curve.name}: ECE {curve.ece:.4f}",
        )  # fmt: skip
        hist.bar(
            centers + (i - 0.5 * (len(cal.curves) - 1)) * width / len(cal.curves),
            curve.counts, width / len(cal.curves), color=f"C{i}", alpha=0.8, label=curve.name,
        )  # fmt: skip
    if cal.kind == "top-label":
        ax.set(xlabel="confidence of the predicted class", ylabel="accuracy")
    else:
        ax.set(xlabel="predicted probability of the positive label", ylabel="observed frequency")
    ax.set(xlim=(0, 1), ylim=(0, 1), title="reliability diagram")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    hist.set(
        xlim=(0, 1), xlabel="probability bin", ylabel="predictions", title="predictions per bin"
    )
    hist.grid(axis="y", alpha=0.3)
    return fig


def threshold(curve: ThresholdCurve):
    """Precision, recall and F1 against the decision threshold, fitted thresholds marked."""
    fig, (ax,) = _figure(6.5, 3.6)
    ax.plot(curve.thresholds, curve.precision, label="precision", color="C0")
    ax.plot(curve.thresholds, curve.recall, label="recall", color="C1")
    ax.plot(curve.thresholds, curve.f1, label="F1", color="C2", lw=2)
    ax.axvline(0.5, color="gray", ls=":", label="0.5")
    for i, (name, t) in enumerate(curve.fitted.items()):
        ax.axvline(t, color="k", ls="--", lw=1, label=f"fitted ({name}) {t:.3f}" if i < 6 else None)
    ax.set(xlabel="threshold on P(positive)", ylim=(0, 1.02), xlim=(0, 1))
    ax.set(title="decision threshold")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def regression(pred: Predictions):
    """Predicted against true values, and the residuals (training scale)."""
    targets = min(pred.truth.shape[1], 4)
    fig, axes = _figure(11.0, 3.5 * targets, cols=3, rows=targets)
    residuals = regression_residuals(pred)
    scale = "log(1 + y)" if pred.scale == "log1p" else "y"
    for t in range(targets):
        scatter, resid, hist = axes[3 * t : 3 * t + 3]
        truth, predicted = pred.truth[:, t], pred.predicted[:, t]
        scatter.scatter(truth, predicted, s=8, alpha=0.5)
        low, high = (
            float(min(truth.min(), predicted.min())),
            float(max(truth.max(), predicted.max())),
        )
        scatter.plot([low, high], [low, high], ":", color="gray")
        if pred.scale == "log1p":
            _log_scale(scatter, "xy", low, high)
        name = pred.labels[t]
        scatter.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title="predicted vs true")
        resid.scatter(predicted, residuals[:, t], s=8, alpha=0.5)
        resid.axhline(0, color="gray", ls=":")
        if pred.scale == "log1p":
            _log_scale(resid, "x", float(predicted.min()), float(predicted.max()))
        resid.set(xlabel=f"predicted {name}", ylabel=f"residual ({scale})", title="residuals")
        hist.hist(residuals[:, t], bins=40, color="C1", alpha=0.8)
        hist.set(xlabel=f"residual ({scale})", ylabel="rows", title="residual distribution")
        for ax in (scatter, resid, hist):
            ax.grid(alpha=0.3)
    return fig


__all__ = [
    "INSTALL_HINT",
    "PlottingUnavailable",
    "class_bars",
    "confusion",
    "figure_class",
    "learning_curves",
    "part_scores",
    "regression",
    "reliability",
    "threshold",
]
