"""Progress of long work: bars with the running loss and the latest metric, and log lines.

Library code reports through a :class:`Reporter`; the silent base class is the default. The
``mlxbert`` CLI passes its rich progress display; :class:`TqdmReporter` shows tqdm bars and
prints lines, for scripts and notebooks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from tqdm.auto import tqdm


class Bar:
    """One running bar; ``advance`` moves it and updates the shown fields."""

    def advance(self, steps: int = 1, **info: Any) -> None:
        """Move ``steps`` forward and show ``info`` (name -> value)."""

    def set_info(self, **info: Any) -> None:
        """Show ``info`` without moving."""


class Reporter:
    """Silent reporter (the default for the Python API)."""

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        yield Bar()

    def log(self, message: str) -> None:
        """One line of news (an epoch's scores, a resumed run)."""

    def scalars(
        self, step: int, values: dict[str, float], *, kind: str = "step", run: str = ""
    ) -> None:
        """Numbers for experiment trackers: ``kind="step"`` after training batch ``step``
        (counted over the whole fit; ``train/loss``, ``train/learning_rate``), ``kind="epoch"``
        after epoch ``step`` (:func:`epoch_scalars`); ``run`` names the fit (a fold, a seed)."""


def epoch_scalars(entry: dict[str, Any]) -> dict[str, float]:
    """A fit log's epoch entry as tracker scalars: ``epoch/loss``, ``epoch/learning_rate``,
    ``epoch/train_seconds``, ``epoch/samples_per_s``, ``epoch/eval_seconds`` and
    ``valid/<metric>`` for every validation metric."""
    keys = ("loss", "learning_rate", "train_seconds", "samples_per_s", "eval_seconds")
    out = {f"epoch/{k}": float(entry[k]) for k in keys if entry.get(k) is not None}
    out |= {f"valid/{k}": float(v) for k, v in (entry.get("metrics") or {}).items()}
    return out


def format_info(info: dict[str, Any]) -> str:
    """``loss 0.4120  accuracy 0.8811``: a bar's fields as text."""
    parts = []
    for key, value in info.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
        elif value is not None:
            parts.append(f"{key} {value}")
    return "  ".join(parts)


class _TqdmBar(Bar):
    def __init__(self, bar: Any):
        self._bar = bar
        self._info: dict[str, Any] = {}

    def advance(self, steps: int = 1, **info: Any) -> None:
        self._bar.update(steps)
        if info:
            self.set_info(**info)

    def set_info(self, **info: Any) -> None:
        self._info.update(info)
        self._bar.set_postfix_str(format_info(self._info), refresh=False)


class TqdmReporter(Reporter):
    """tqdm bars on stderr and log lines on stdout."""

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        with tqdm(total=total, desc=description, unit="batch", dynamic_ncols=True) as bar:
            yield _TqdmBar(bar)

    def log(self, message: str) -> None:
        print(message, file=sys.stdout, flush=True)


def get_reporter(progress: bool | Reporter) -> Reporter:
    """A reporter for a ``progress`` argument: a reporter as it is, True for tqdm, False for
    silence."""
    if isinstance(progress, Reporter):
        return progress
    return TqdmReporter() if progress else Reporter()


__all__ = ["Bar", "Reporter", "TqdmReporter", "epoch_scalars", "format_info", "get_reporter"]
