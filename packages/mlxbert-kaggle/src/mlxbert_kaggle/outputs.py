"""Output paths that never cost the user anything they did not ask to replace.

Every command checks its output before long work starts (a folder is not a file, a file's
folder can be written, an existing output needs ``--overwrite`` or ``--resume``), and a
command that fails removes what it created and nothing else. An interrupt keeps what a
resumable command wrote, so that ``--resume`` can continue it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import InputError, SimulatedKill

#: Exceptions that stop a command but keep its partial work (``--resume`` continues it).
INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, SimulatedKill)


def _writable_parent(path: Path, flag: str) -> None:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: cannot write in {parent} (permission denied)")


def check_output_file(
    path: str | Path,
    *,
    overwrite: bool = False,
    suffixes: Sequence[str] | None = None,
    flag: str = "--output",
) -> Path:
    """Check an output file before any work: not a folder, a known suffix, a writable
    folder, and no existing file unless ``overwrite``."""
    out = Path(path)
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise InputError(f"{flag} must end with {' or '.join(suffixes)}, got {out}")
    if out.is_dir():
        raise InputError(f"{flag} {out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise InputError(f"{flag} {out} exists; pass --overwrite to replace it")
    _writable_parent(out, flag)
    return out


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_output_dir(
    path: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    resumable: bool = False,
    flag: str = "--output",
) -> Path:
    """Check an output folder before any work: not a file, writable, and empty unless the
    user asked to continue (``resume``, for ``resumable`` commands) or replace
    (``overwrite``) what is there."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out} is a file, not a folder")
    if out.is_dir() and not _is_empty_dir(out) and not (overwrite or resume):
        hint = "--resume to continue the run there or " if resumable else ""
        raise InputError(f"{flag} {out} is not empty; pass {hint}--overwrite to replace it")
    _writable_parent(out / "x" if out.is_dir() else out, flag)
    return out


@contextlib.contextmanager
def claimed_dir(
    path: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    resumable: bool = False,
    flag: str = "--output",
) -> Iterator[Path]:
    """An output folder for one command (checked as :func:`check_output_dir`; ``overwrite``
    clears it). If the command fails, everything it created there is removed; an interrupt
    keeps it for ``--resume``; a folder it continued (``resume``) is left as it is."""
    out = check_output_dir(path, overwrite=overwrite, resume=resume, resumable=resumable, flag=flag)
    continuing = resume and out.is_dir() and not _is_empty_dir(out)
    existed = out.is_dir()
    if overwrite and existed and not continuing:
        shutil.rmtree(out)
        existed = False
    before = set(out.iterdir()) if existed else set()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except INTERRUPTS:
        raise
    except BaseException:
        if not continuing:
            if existed:
                for item in set(out.iterdir()) - before:
                    shutil.rmtree(item) if item.is_dir() else item.unlink(missing_ok=True)
            else:
                shutil.rmtree(out, ignore_errors=True)
        raise


__all__ = ["INTERRUPTS", "check_output_dir", "check_output_file", "claimed_dir"]
