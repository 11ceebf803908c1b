"""Shared pieces of the commands: the one error policy, the console, list options.

Every command of the ``mlxbert`` app goes through :func:`guarded` (the app's
:class:`GuardedTyper` applies it when a command is registered), so the policy holds for every
command in one place: an expected failure is one line on stderr and exit status 2, an
interrupt exit status 3 (with a ``--resume`` hint for the commands that have one), and a
traceback only with ``--debug`` or ``MLXBERT_DEBUG=1``.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer
from rich.console import Console
from rich.text import Text

from mlxbert_core import CheckpointError, UnsafePickleError, WeightMismatchError, set_device
from mlxbert_glue import StaleRunError

from ..errors import InputError
from ..outputs import INTERRUPTS

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

EXIT_INPUT = 2  # bad input: the message says what to fix
EXIT_INTERRUPTED = 3  # stopped before the end
DEBUG_ENV = "MLXBERT_DEBUG"

#: Failures that are the user's input or environment, not a bug: reported in one line.
#: Library code raises ValueError / OSError / KeyError / ImportError (a missing extra) for
#: bad arguments, missing or unreadable files and unknown names.
EXPECTED: tuple[type[BaseException], ...] = (
    InputError,
    StaleRunError,
    CheckpointError,
    UnsafePickleError,
    WeightMismatchError,
    OSError,
    ValueError,
    KeyError,
    ImportError,
)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a KeyError's without its quotes)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    text = str(text) or type(exc).__name__
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    return re.sub(r"\s+", " ", "; ".join(parts))


def _say(label: str, style: str, message: str) -> None:
    # Text, not markup: messages hold brackets (mlx[cpu], [0, 1]) that are not rich tags.
    err_console.print(Text.assemble((label, style), " ", message), soft_wrap=True)


def guarded(fn: F) -> F:
    """``fn`` under the error policy (see the module doc). Idempotent."""
    if getattr(fn, "__mlxbert_guarded__", False):
        return fn
    resumable = "resume" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except INTERRUPTS as exc:
            if debugging():
                raise
            what = one_line(exc) if str(exc) else "interrupted"
            hint = (
                "; finished folds and epoch checkpoints are kept: run the same command with "
                "--resume to continue"
                if resumable
                else "; nothing was written"
            )
            _say("stopped:", "bold yellow", what + hint)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except EXPECTED as exc:
            if debugging():
                raise
            _say("error:", "bold red", one_line(exc))
            raise typer.Exit(EXIT_INPUT) from None

    wrapper.__mlxbert_guarded__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class GuardedTyper(typer.Typer):
    """A ``typer.Typer`` whose every command runs under :func:`guarded`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(guarded(fn))
            return fn

        return decorator


def note(message: str) -> None:
    """A one-line note on stderr (something the user may want to change, not an error)."""
    _say("note:", "bold yellow", message)


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


def positive(value: int | None, flag: str, *, minimum: int = 1) -> None:
    """A count flag must be at least ``minimum`` (checked before any work)."""
    if value is not None and value < minimum:
        raise InputError(f"{flag} must be >= {minimum}, got {value}")


def is_tty() -> bool:
    return sys.stderr.isatty()
