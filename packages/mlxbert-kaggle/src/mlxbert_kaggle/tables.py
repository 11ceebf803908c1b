"""Reading competition tables (CSV, TSV, Parquet; optionally gzip-compressed) and writing
prediction tables.

Every cell is read as text first and typed per column afterwards, which handles the quirks of
real competition files:

* CRLF line endings, quoted commas and newlines inside quoted fields (a real CSV parser, never
  a split on lines);
* an empty field means *missing*;
* the string ``NA`` (and ``N/A``, ``NaN``, ``null``, ``None``) means missing only in a column
  whose other values are all numbers. In a text column it is kept as a category: in the house
  prices data ``Alley = NA`` means "no alley access", not "unknown". pandas' default
  ``na_values`` would turn both into NaN;
* a UTF-8 byte order mark is dropped; a file that is not UTF-8 is refused with the position of
  the first bad byte.

Identifier columns keep their exact text (``keep_text``), so a submission repeats them as given.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import InputError, missing_columns_error

#: Strings that mean "missing" in a column that is otherwise numeric.
NUMERIC_MISSING = frozenset({"NA", "N/A", "NaN", "nan", "null", "NULL", "None", "none", "-"})


def table_format(path: str | Path) -> str:
    """``csv``, ``tsv`` or ``parquet`` from the file name (``.gz`` allowed for text files)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".tsv", ".tab")):
        return "tsv"
    return "csv"


def _check_utf8(path: Path) -> None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not data.strip():
        raise InputError(f"{path} is empty: expected a header row and at least one data row")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def _read_raw(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError(
                f"reading {path.name} needs pyarrow: pip install 'mlxbert-kaggle[parquet]'"
            ) from None
        frame = pd.read_parquet(path)
        # Same contract as text files: strings for text columns, None for missing.
        return frame
    _check_utf8(path)
    options = dict(
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8-sig",
        compression="infer",
    )
    if fmt == "tsv":
        # ML TSV files (GLUE, SST-2) are not quoted and contain bare '"' characters.
        options |= {"sep": "\t", "quoting": csv.QUOTE_NONE}
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty: expected a header row and data rows") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path} is not a well-formed {fmt.upper()} file: {exc}") from None


def _type_column(values: pd.Series) -> pd.Series:
    """Numbers when every non-missing cell parses as one (NA-like strings become NaN),
    else the text as it is (NA-like strings stay categories)."""
    if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
        return values
    present = values.dropna()
    candidates = present[~present.isin(NUMERIC_MISSING)]
    if len(candidates) == 0:
        return values
    numbers = pd.to_numeric(candidates.str.strip(), errors="coerce")
    if numbers.isna().any():
        return values
    out = pd.to_numeric(values.where(~values.isin(NUMERIC_MISSING)).str.strip(), errors="coerce")
    if out.notna().all() and np.all(np.mod(out.to_numpy(), 1) == 0):
        return out.astype(np.int64)
    return out


def read_table(
    path: str | Path, *, keep_text: Iterable[str] = (), what: str = "table"
) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file into a DataFrame with per-column types (see module doc).

    ``keep_text``: columns kept as their exact text (identifiers). Raises :class:`InputError`
    for a missing, empty or non-UTF-8 file, or one with a header but no rows.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} file {p} does not exist")
    if p.is_dir():
        raise InputError(f"{what} path {p} is a folder; give a CSV, TSV or Parquet file")
    fmt = table_format(p)
    frame = _read_raw(p, fmt)
    if frame.shape[1] == 0:
        raise InputError(f"{p} has no columns")
    if len(frame) == 0:
        raise InputError(f"{p} has a header but no data rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise InputError(f"{p} has duplicate column names: {', '.join(dupes)}")
    keep = set(keep_text)
    for column in frame.columns:
        if column not in keep:
            frame[column] = _type_column(frame[column])
    frame.attrs["source"] = str(p)
    return frame


def looks_like_text(values: pd.Series, min_words: float = 3.0) -> bool:
    """A column of free text (sentences), not ids, codes or numbers: strings of
    ``min_words`` words or more on average."""
    if pd.api.types.is_numeric_dtype(values):
        return False
    present = values.dropna().astype(str)
    if present.empty:
        return False
    return float(present.str.split().str.len().mean()) >= min_words


def require_columns(frame: pd.DataFrame, columns: Iterable[str], where: str = "the table") -> None:
    """Raise :class:`InputError` listing the available columns when any is absent."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise missing_columns_error(missing, frame.columns, where)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (no index) atomically as CSV, TSV or Parquet (by the file name)."""
    target = Path(path)
    fmt = table_format(target)
    with atomic_path(target) as tmp:
        if fmt == "parquet":
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError:
                raise InputError(
                    f"writing {target.name} needs pyarrow: pip install 'mlxbert-kaggle[parquet]'"
                ) from None
        else:
            compression = "gzip" if target.name.lower().endswith(".gz") else None
            frame.to_csv(
                tmp,
                index=False,
                sep="\t" if fmt == "tsv" else ",",
                lineterminator="\n",
                compression=compression,
            )
    return target


__all__ = [
    "NUMERIC_MISSING",
    "looks_like_text",
    "read_table",
    "require_columns",
    "table_format",
    "write_table",
]
