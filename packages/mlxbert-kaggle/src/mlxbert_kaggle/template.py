"""Rendering table rows as text for a BERT-family encoder.

Tabular columns become ``Name: value`` pieces joined by `` | `` with numbers formatted for
reading (``22``, ``7.25``, ``71.28``) and missing values written out (``Cabin: missing``); text
columns follow as they are. A format string (``"{keyword}: {text}"``) gives full control, with
the same formatting of each value.

    >>> TextTemplate(columns=["Age", "Sex"]).render_row({"Age": 22.0, "Sex": "male"})
    'Age: 22 | Sex: male'
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd

from .errors import InputError
from .tables import require_columns

#: Per-column value transforms a template may apply before formatting.
TRANSFORMS = ("url_decode", "lower", "strip")


def format_value(value: Any, missing: str = "missing") -> str:
    """A cell as text: ``missing`` for NaN/None/empty, integers without ``.0``, other numbers
    to 4 significant digits (plain notation), text stripped."""
    if value is None:
        return missing
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return missing
        if math.isinf(x):
            return "infinite" if x > 0 else "minus infinite"
        if x == int(x) and abs(x) < 1e15:
            return str(int(x))
        if abs(x) >= 1000:
            return str(round(x))
        text = f"{x:.4g}"
        if "e" in text:  # tiny numbers: plain notation reads better than 1.2e-05
            text = np.format_float_positional(x, precision=4, fractional=False, trim="-")
        return text
    text = str(value).strip()
    return text if text else missing


@dataclass
class TextTemplate:
    """How a row becomes one text.

    Attributes:
        columns: tabular columns, rendered ``Name: value`` in this order.
        text_columns: free-text columns appended after them (labelled ``Name: ...`` only when
            there is more than one text column or any tabular column).
        format: optional ``str.format`` string over column names (``"{keyword}: {text}"``);
            when given, ``columns`` and ``text_columns`` only list the columns it uses.
        missing: the word for a missing value.
        separator: between the pieces.
        transforms: per-column transforms (``url_decode``, ``lower``, ``strip``) applied to the
            raw text before formatting (e.g. URL-encoded keywords: ``body%20bags``).
    """

    columns: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    format: str | None = None
    missing: str = "missing"
    separator: str = " | "
    transforms: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = [str(c) for c in self.columns]
        self.text_columns = [str(c) for c in self.text_columns]
        if self.format is not None:
            used = [f for _, f, _, _ in string.Formatter().parse(self.format) if f]
            if not used:
                raise InputError(f"template {self.format!r} names no column (use {{column}})")
            if self.columns or self.text_columns:
                extra = [c for c in used if c not in (*self.columns, *self.text_columns)]
                self.columns.extend(dict.fromkeys(extra))
            else:
                self.columns = list(dict.fromkeys(used))
        if not self.columns and not self.text_columns:
            raise InputError("the text template uses no column: give --text and/or feature columns")
        for column, names in self.transforms.items():
            bad = [n for n in names if n not in TRANSFORMS]
            if bad:
                raise InputError(
                    f"unknown transform(s) {bad} for column {column!r}; known: {TRANSFORMS}"
                )

    @property
    def used_columns(self) -> list[str]:
        return list(dict.fromkeys([*self.columns, *self.text_columns]))

    def _value(self, column: str, value: Any) -> str:
        for name in self.transforms.get(column, []):
            if isinstance(value, str):
                if name == "url_decode":
                    value = unquote(value)
                elif name == "lower":
                    value = value.lower()
                elif name == "strip":
                    value = value.strip()
        return format_value(value, self.missing)

    def render_row(self, row: Mapping[str, Any]) -> str:
        """One row (a mapping column -> value) as text."""
        if self.format is not None:
            values = {c: self._value(c, row.get(c)) for c in self.columns}
            return self.format.format_map(values)
        pieces = [f"{c}: {self._value(c, row.get(c))}" for c in self.columns]
        label_texts = len(self.text_columns) > 1 or bool(self.columns)
        for c in self.text_columns:
            text = self._value(c, row.get(c))
            pieces.append(f"{c}: {text}" if label_texts else text)
        return self.separator.join(pieces)

    def render(self, frame: pd.DataFrame, where: str = "the table") -> list[str]:
        """Every row of ``frame`` as text (missing columns: :class:`InputError`)."""
        require_columns(frame, self.used_columns, where)
        records = frame[self.used_columns].to_dict("records")
        return [self.render_row(r) for r in records]

    def describe(self) -> str:
        """A readable one-line form, stored as the model's ``text_template``."""
        if self.format is not None:
            return self.format
        pieces = [f"{c}: {{{c}}}" for c in self.columns]
        label_texts = len(self.text_columns) > 1 or bool(self.columns)
        pieces += [f"{c}: {{{c}}}" if label_texts else f"{{{c}}}" for c in self.text_columns]
        return self.separator.join(pieces)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextTemplate:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def looks_like_id(frame: pd.DataFrame, column: str) -> bool:
    """A column named like an identifier (``id``, ``PassengerId``, ``row_id``) whose values are
    all distinct: it carries no signal and is left out of the default template."""
    name = str(column).lower()
    return (name == "id" or name.endswith("id")) and frame[column].is_unique


def default_template(
    frame: pd.DataFrame,
    *,
    targets: Sequence[str],
    text_columns: Sequence[str] = (),
    feature_columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    format: str | None = None,
) -> TextTemplate:
    """The template ``mlxbert train`` uses.

    ``format`` wins when given. Else: ``feature_columns`` (tabular) + ``text_columns``; with
    only text columns given, just those; with neither, every column except the targets, the
    excluded ones and identifier-like ones (see :func:`looks_like_id`).
    """
    if format is not None:
        return TextTemplate(format=format)
    skip = {*targets, *exclude, *text_columns}
    if feature_columns is not None:
        features = list(feature_columns)
    elif text_columns:
        features = []
    else:
        features = [c for c in frame.columns if c not in skip and not looks_like_id(frame, c)]
    return TextTemplate(columns=features, text_columns=list(text_columns))


__all__ = ["TRANSFORMS", "TextTemplate", "default_template", "format_value", "looks_like_id"]
