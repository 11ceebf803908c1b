"""The CLI's progress display: rich bars with the running loss and the latest metric.

Library code reports through the task-model layer's :class:`Reporter`; the CLI passes a
:class:`RichReporter`, the Python API a quiet one by default.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mlxbert_glue.task_model import Bar, Reporter, format_info, get_reporter


class _RichBar(Bar):
    def __init__(self, progress: Any, task_id: Any):
        self._progress = progress
        self._task = task_id
        self._info: dict[str, Any] = {}

    def advance(self, steps: int = 1, **info: Any) -> None:
        self._info.update(info)
        self._progress.update(self._task, advance=steps, info=format_info(self._info))

    def set_info(self, **info: Any) -> None:
        self._info.update(info)
        self._progress.update(self._task, info=format_info(self._info))


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
                f"[{seconds:.0f} s] {format_info(self._info)}",
                highlight=False,
                soft_wrap=True,
            )

    def set_info(self, **info: Any) -> None:
        self._info.update(info)


class RichReporter(Reporter):
    """Rich progress bars on stderr (transient per bar) and log lines on the console."""

    def __init__(self, console: Any = None):
        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        if not self.console.is_terminal:
            yield _LogBar(self.console, description, total)
            return
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


__all__ = ["Bar", "Reporter", "RichReporter", "get_reporter"]
