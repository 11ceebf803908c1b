"""``mlxbert train``'s flags, shared by the commands built on it (``tune``, ``distill``).

:func:`with_train_flags` gives a command the data and fitting flags of ``train`` (one
definition, so they cannot drift apart) plus its own; :func:`split_train_flags` turns the
values into ``train_table``'s data keywords and a :class:`FitConfig`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InputError
from ..training import FitConfig
from . import cmd_train
from ._common import positive

#: train flag (parameter name) -> train_table keyword.
TABLE_KEYWORDS = {
    "train": "train",
    "valid": "valid",
    "target": "target",
    "text": "text",
    "feature": "features",
    "template": "template",
    "task": "task",
    "time_col": "time_col",
    "horizon": "horizon",
    "history": "history",
    "label_sep": "label_sep",
    "target_transform": "target_transform",
    "folds": "folds",
    "group_col": "group_col",
    "id_col": "id_col",
    "exclude": "exclude",
    "valid_fraction": "valid_fraction",
    "max_rows": "max_rows",
}
#: train flags that are FitConfig fields.
CONFIG_FIELDS = tuple(
    name
    for name in FitConfig.__dataclass_fields__
    if name in inspect.signature(cmd_train.train).parameters
)


def with_train_flags(
    extra: Callable[..., Any], *, drop: Sequence[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command's signature becomes ``train``'s flags (less ``drop``)
    followed by ``extra``'s parameters; the command receives them all as keywords."""
    base = inspect.signature(cmd_train.train)
    hints = typing.get_type_hints(cmd_train.train, include_extras=True)
    extra_hints = typing.get_type_hints(extra, include_extras=True)
    own = inspect.signature(extra).parameters
    params = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])
        for p in base.parameters.values()
        if p.name not in drop and p.name not in own
    ]
    params += [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=extra_hints[p.name])
        for p in own.values()
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            return fn(**values)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer reads the signature above, not fn's
        command.__doc__ = fn.__doc__
        return command

    return decorate


def split_train_flags(values: dict[str, Any]) -> tuple[dict[str, Any], FitConfig]:
    """(``train_table``'s data keywords, the :class:`FitConfig`) from train's flag values,
    checked as ``train`` checks them."""
    positive(values.get("folds"), "--folds", minimum=2)
    positive(values.get("max_rows"), "--max-rows")
    if values.get("valid") is not None and values.get("folds"):
        raise InputError("use either --valid (hold-out) or --folds (cross-validation)")
    table = {kw: values[name] for name, kw in TABLE_KEYWORDS.items() if name in values}
    for key in ("text", "exclude"):
        table[key] = table.get(key) or ()
    config = FitConfig(**{k: values[k] for k in CONFIG_FIELDS if k in values})
    return table, config


__all__ = ["CONFIG_FIELDS", "TABLE_KEYWORDS", "split_train_flags", "with_train_flags"]
