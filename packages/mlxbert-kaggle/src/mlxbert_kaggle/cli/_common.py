"""Shared pieces of the commands: error handling, the console, list options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlxbert_core import set_device

from ..errors import InputError
from ..training import SimulatedKill

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

EXIT_INPUT = 2  # bad input: the message says what to fix
EXIT_INTERRUPTED = 3  # stopped before the end: continue with --resume


def handle_errors(fn: F) -> F:
    """Bad input -> one clear message on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(EXIT_INPUT) from None
        except (SimulatedKill, KeyboardInterrupt) as exc:
            what = str(exc) or "interrupted"
            err_console.print(
                f"[bold yellow]stopped:[/] {what}; finished folds and epoch checkpoints are "
                "kept: run the same command with --resume to continue",
                highlight=False,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def use_device(device: str | None) -> None:
    """``--device cpu|gpu``: MLX's default device for this run."""
    if device is None:
        return
    try:
        set_device(device)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"--device {device}: {exc}") from None


def parse_floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise InputError(f"{flag} takes comma-separated numbers, e.g. 0.5,0.3,0.2") from None


def is_tty() -> bool:
    return sys.stderr.isatty()
