"""The export's output folder: checked before any work, written to a temporary folder next
to it and renamed into place at the end, so a failed export leaves nothing behind (not even
the parent folders it had to create)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..task_model import atomic_dir
from ..task_model.folder import TOKENIZER_FILES
from .errors import ExportError


def check_output(output: str | Path, overwrite: bool) -> Path:
    """The output folder, or an :class:`ExportError` saying why it cannot be written."""
    path = Path(output).expanduser()
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise ExportError(f"output {path} exists and is not a folder; choose another path")
        if not overwrite:
            raise ExportError(
                f"output {path} already exists; choose another path or pass overwrite "
                "(--overwrite) to replace it"
            )
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ExportError(f"cannot write {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: no permission to write in {ancestor}")
    return path


@contextlib.contextmanager
def output_folder(path: Path) -> Iterator[Path]:
    """A temporary folder that becomes ``path`` when the block succeeds."""
    missing = []
    parent = path.absolute().parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    try:
        with atomic_dir(path) as tmp:
            yield tmp
    except BaseException:
        for folder in missing:  # innermost first; only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def write_tokenizer(tokenizer: Any, source_dir: str | Path | None, out: Path) -> None:
    """``tokenizer.json`` and its side files (``tokenizer_config.json``, vocabulary...)."""
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(out)
    if source_dir is not None and Path(source_dir).is_dir():
        for name in TOKENIZER_FILES:
            src = Path(source_dir) / name
            if src.is_file() and not (out / name).exists():
                shutil.copyfile(src, out / name)
    if not (out / "tokenizer.json").is_file():
        raise ExportError("the model's tokenizer has no tokenizer.json to write beside it")


__all__ = ["check_output", "output_folder", "write_tokenizer"]
