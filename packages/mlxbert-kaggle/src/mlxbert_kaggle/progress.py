"""Progress display: rich bars with the running loss and the latest metric, or nothing.

Library code reports through a :class:`Reporter`; the CLI passes a :class:`RichReporter`, the
Python API a quiet one by default (``progress=True`` turns the bars on in a notebook too).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


class Bar:
    """One running bar; ``advance`` moves it and updates the shown fields."""

    def advance(self, steps: int = 1, **info: Any) -> None:  # pragma: no cover - interface
        pass

    def set_info(self, **info: Any) -> None:  # pragma: no cover - interface
        pass


class Reporter:
    """Silent reporter (the default for the Python API)."""

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        yield Bar()

    def log(self, message: str) -> None:
        pass


def _format_info(info: dict[str, Any]) -> str:
    parts = []
    for key, value in info.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
        elif value is not None:
            parts.append(f"{key} {value}")
    return "  ".join(parts)


class _RichBar(Bar):
    def __init__(self, progress: Any, task_id: Any):
        self._progress = progress
        self._task = task_id
        self._info: dict[str, Any] = {}

    def advance(self, steps: int = 1, **info: Any) -> None:
        self._info.update(info)
        self._progress.update(self._task, advance=steps, info=_format_info(self._info))

    def set_info(self, **info: Any) -> None:
        self._info.update(info)
        self._progress.update(self._task, info=_format_info(self._info))


class _LogBar(Bar):
    """Without a terminal (a log file, a pipe): a line every tenth of the way."""

    def __init__(self, console: Any, description: str, total: int | None):
        self._console = console
        self._description = description
        self._total = total
        self._done = 0
        self._every = max(1, (total or 10) // 10)
        self._info: dict[str, Any] = {}
        self._started = time.perf_counter()

    def advance(self, steps: int = 1, **info: Any) -> None:
        self._info.update(info)
        before, self._done = self._done, self._done + steps
        if self._done // self._every > before // self._every:
            seconds = time.perf_counter() - self._started
            self._console.print(
                f"{self._description}: {self._done}/{self._total or '?'} "
                f"[{seconds:.0f} s] {_format_info(self._info)}",
                highlight=False,
                soft_wrap=True,
            )

    def set_info(self, **info: Any) -> None:
        self._info.update(info)


class RichReporter(Reporter):
    """Rich progress bars on stderr (transient per bar) and log lines on the console."""

    def __init__(self, console: Any = None):
        from rich.console import Console

        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        if not self.console.is_terminal:
            yield _LogBar(self.console, description, total)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=True,
        )
        with progress:
            task_id = progress.add_task(description, total=total, info="")
            yield _RichBar(progress, task_id)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)


def get_reporter(progress: bool | Reporter) -> Reporter:
    if isinstance(progress, Reporter):
        return progress
    return RichReporter() if progress else Reporter()


__all__ = ["Bar", "Reporter", "RichReporter", "get_reporter"]
