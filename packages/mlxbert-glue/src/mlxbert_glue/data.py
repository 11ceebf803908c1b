"""Readers for the official GLUE tsv files.

The quirks handled here (all measured on the official files):

* every file is read with ``csv.QUOTE_NONE``: many sentences contain ``"`` and default
  quoting silently merges rows (MRPC train would come out 98 rows short);
* MRPC's train/dev headers start with a UTF-8 byte-order mark, so files are decoded as
  ``utf-8-sig``;
* CoLA's train/dev have no header row (test has one);
* labels are strings (``entailment``/``not_entailment``, ``0``/``1``, MNLI's three classes)
  mapped to ids through the task's label list; STS-B scores are float strings.
"""

from __future__ import annotations

import csv
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tasks import GlueTask, SplitLayout, get_task

# Some QQP/MNLI fields are long; the csv module's default limit (128 KiB) is plenty for GLUE,
# but raise it anyway so an odd file fails on its content, not on the parser.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class GlueExamples:
    """One split of one task, in file order.

    ``labels`` holds class ids (int64) for classification, float32 scores for STS-B, and is
    None for unlabeled (test) files. ``ids`` are the file's index column (or the row number
    when the file has none), as strings, ready for a submission file.
    """

    task: GlueTask
    split: str
    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray | None
    ids: list[str]
    path: Path

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int | None) -> GlueExamples:
        """The first ``n`` examples (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return GlueExamples(
            task=self.task,
            split=self.split,
            texts=self.texts[:n],
            pairs=None if self.pairs is None else self.pairs[:n],
            labels=None if self.labels is None else self.labels[:n],
            ids=self.ids[:n],
            path=self.path,
        )


def resolve_task_dir(task: GlueTask, data_dir: str | Path, split: str = "train") -> Path:
    """Find the folder holding ``task``'s files.

    ``data_dir`` may be the GLUE root (holding ``CoLA/``, ``SST-2/`` …) or the task's own
    folder (for example ``glue/MRPC/senteval_tokenized``).
    """
    root = Path(data_dir).expanduser()
    layout = task.layout(split)
    if layout.subdir is not None:
        for base in (root, root.parent):
            if (base / layout.subdir / layout.filename).is_file():
                return base / layout.subdir
        return root / layout.subdir
    nested = root / task.dir_name
    if nested.is_dir() or not (root / layout.filename).is_file():
        return nested
    return root


def split_path(task: str | GlueTask, data_dir: str | Path, split: str) -> Path:
    """Where ``split`` of ``task`` is expected under ``data_dir``."""
    t = get_task(task)
    return resolve_task_dir(t, data_dir, split) / t.layout(split).filename


def _column(layout_col: str | int, header: list[str] | None, path: Path) -> int:
    if isinstance(layout_col, int):
        return layout_col
    assert header is not None
    try:
        return header.index(layout_col)
    except ValueError:
        raise ValueError(
            f"{path}: expected a column named {layout_col!r}; the header has {header}. "
            "Is this the official GLUE file for this task?"
        ) from None


def _read_rows(path: Path) -> list[list[str]]:
    # utf-8-sig drops MRPC's BOM; newline="" lets csv see the raw line endings.
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [row for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def _label_ids(task: GlueTask, raw: list[str], path: Path, rows: list[int]) -> np.ndarray:
    if task.is_regression:
        try:
            return np.asarray([float(v) for v in raw], dtype=np.float32)
        except ValueError as exc:
            raise ValueError(f"{path}: a score is not a number ({exc})") from None
    assert task.labels is not None
    lookup = {name: i for i, name in enumerate(task.labels)}
    out = np.empty(len(raw), dtype=np.int64)
    for i, value in enumerate(raw):
        key = value.strip()
        if key not in lookup:
            raise ValueError(
                f"{path}, data row {rows[i]}: label {value!r} is not one of {list(task.labels)}"
            )
        out[i] = lookup[key]
    return out


def read_split(task: GlueTask, layout: SplitLayout, path: Path, split: str) -> GlueExamples:
    """Parse one tsv file according to ``layout``."""
    rows = _read_rows(path)
    header = None
    if layout.header:
        if not rows:
            raise ValueError(f"{path} is empty; expected a header row")
        header, rows = [h.strip() for h in rows[0]], rows[1:]
    width = len(header) if header is not None else max((len(r) for r in rows), default=0)

    text_col = _column(layout.text, header, path)
    pair_col = None if layout.text_pair is None else _column(layout.text_pair, header, path)
    label_col = None if layout.label is None else _column(layout.label, header, path)
    index_col = None
    if layout.index is not None and header is not None and layout.index in header:
        index_col = header.index(layout.index)
    needed = max(c for c in (text_col, pair_col, label_col, index_col) if c is not None)

    texts: list[str] = []
    pairs: list[str] | None = [] if pair_col is not None else None
    raw_labels: list[str] = []
    ids: list[str] = []
    kept_rows: list[int] = []
    skipped = 0
    for n, row in enumerate(rows):
        if len(row) <= needed or (header is not None and len(row) != width):
            if task.skip_malformed:
                skipped += 1
                continue
            raise ValueError(
                f"{path}, data row {n}: expected {width} tab-separated fields, got {len(row)}. "
                "GLUE files must be read with quoting disabled (csv.QUOTE_NONE); "
                "is the file complete and unmodified?"
            )
        texts.append(row[text_col].strip())
        if pairs is not None:
            pairs.append(row[pair_col].strip())
        if label_col is not None:
            raw_labels.append(row[label_col])
        ids.append(row[index_col].strip() if index_col is not None else str(n))
        kept_rows.append(n)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed rows", stacklevel=3)

    labels = None if label_col is None else _label_ids(task, raw_labels, path, kept_rows)
    return GlueExamples(task, split, texts, pairs, labels, ids, path)


def load_task(task: str | GlueTask, data_dir: str | Path, split: str = "train") -> GlueExamples:
    """Read one split of a GLUE task from the official tsv files.

    Args:
        task: ``cola``, ``sst2``, ``mrpc``, ``qqp``, ``stsb``, ``mnli``, ``qnli``, ``rte`` or
            ``wnli`` (``SST-2``/``STS-B`` spellings are accepted).
        data_dir: the GLUE root (holding ``CoLA/``, ``SST-2/`` …) or the task's own folder.
        split: ``train``, ``dev`` or ``test``; MNLI also has ``dev_mismatched``,
            ``test_mismatched`` and ``diagnostic`` (GLUE's AX set). ``dev``/``test`` on MNLI
            are the matched sets.

    Raises:
        FileNotFoundError: naming the exact file that was expected.
    """
    t = get_task(task)
    layout = t.layout(split)
    path = resolve_task_dir(t, data_dir, split) / layout.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"GLUE {t.name} {split}: expected the file {path} (the official GLUE "
            f"{t.dir_name}/{layout.filename}). Pass the GLUE root folder (holding "
            f"{t.dir_name}/) or the {t.dir_name} folder itself as data_dir."
        )
    return read_split(t, layout, path, split)
