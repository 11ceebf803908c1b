"""The one exception type for problems with the user's input.

The CLI prints an :class:`InputError` as a single message (no traceback) and exits with
status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class InputError(ValueError):
    """Bad input (a file, a column, a flag): the message says what is wrong and what to do."""


class SimulatedKill(RuntimeError):
    """Raised by the test hooks (``MLXBERT_KAGGLE_KILL_AFTER_EPOCHS`` / ``_FOLDS``) to imitate
    a run killed after a checkpoint was written."""


def missing_columns_error(
    missing: Iterable[str], available: Iterable[str], where: str
) -> InputError:
    """The standard message for columns that are not in a table: lists the ones that are."""
    missing = list(missing)
    shown = ", ".join(repr(str(c)) for c in available)
    noun = "column" if len(missing) == 1 else "columns"
    return InputError(
        f"{where} has no {noun} {', '.join(repr(str(c)) for c in missing)}; "
        f"available columns: {shown}"
    )


__all__ = ["InputError", "SimulatedKill", "missing_columns_error"]
