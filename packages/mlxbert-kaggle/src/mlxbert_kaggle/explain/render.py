"""An :class:`Explanation` as a picture (PNG, matplotlib: the ``report`` extra) and as a
coloured line of tokens in the terminal (rich)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text

from mlxbert_glue.task_model import atomic_path

from ..report.figures import figure_class
from .core import Explanation

METHOD_NAMES = {"rollout": "attention rollout", "gradient": "gradient × input"}


def _shade(value: float) -> str:
    """White to red as ``value`` goes from 0 to 1."""
    v = float(np.clip(value, 0.0, 1.0))
    other = round(255 * (1.0 - 0.75 * v))
    return f"#ff{other:02x}{other:02x}"


def token_line(explanation: Explanation) -> Text:
    """The tokens, each on a background as strong as its importance (relative to the most
    important non-special token); word pieces (``##``) join their word."""
    plain = [v for v, s in zip(explanation.importance, explanation.special) if not s]
    scale = max(plain, default=0.0) or 1.0
    line = Text()
    for i, (token, value) in enumerate(zip(explanation.tokens, explanation.importance)):
        piece = token[2:] if token.startswith("##") else token
        if i and not token.startswith("##"):
            line.append(" ")
        style = "dim" if explanation.special[i] else f"black on {_shade(value / scale)}"
        line.append(piece, style=style)
    return line


def summary_line(explanation: Explanation) -> str:
    p = explanation.prediction
    if "value" in p:
        answer = f"value {p['value']}"
    else:
        answer = f"{p['label']} ({p['confidence']:.3f})"
    top = np.argsort(-explanation.importance)
    best = [explanation.tokens[i] for i in top if not explanation.special[i]][:5]
    return (
        f"prediction: {answer}; {METHOD_NAMES[explanation.method]}, most important: "
        + ", ".join(best)
    )


def plot(explanation: Explanation, path: str | Path) -> Path:
    """Write the attention map (when the encoder has one) and the token importances as a
    PNG at ``path`` (atomically; the file gets the umask's mode)."""
    figure = figure_class()
    n = len(explanation.tokens)
    side = min(12.0, max(4.0, 0.32 * n + 2.0))
    if explanation.attention is not None:
        fig = figure(figsize=(side + 1.2, side + 2.6), dpi=100, layout="constrained")
        grid = fig.add_gridspec(2, 1, height_ratios=[side, 2.2])
        ax = fig.add_subplot(grid[0])
        bars = fig.add_subplot(grid[1])
        image = ax.imshow(explanation.attention, cmap="viridis", vmin=0)
        which = "mean over heads" if explanation.head is None else f"head {explanation.head}"
        ax.set_title(f"attention, layer {explanation.layer} ({which}): row attends to column")
        ax.set_xticks(range(n), explanation.tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(n), explanation.tokens, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.7)
    else:
        fig = figure(figsize=(side + 1.2, 3.2), dpi=100, layout="constrained")
        bars = fig.add_subplot(1, 1, 1)
        fig.suptitle(
            f"{explanation.architecture}: the encoder computes no attention probabilities",
            fontsize=9,
        )
    bars.bar(range(n), explanation.importance, color="C3")
    bars.set_xticks(range(n), explanation.tokens, rotation=90, fontsize=8)
    bars.set_xlim(-0.5, n - 0.5)
    bars.set_ylabel("importance")
    bars.set_title(
        f"token importance ({METHOD_NAMES[explanation.method]}); {summary_line(explanation).split(';')[0]}"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


__all__ = ["plot", "summary_line", "token_line"]
