"""Graph writers: one per encoder family, found by the encoder's class.

A writer describes the encoder's forward pass with :class:`~mlxbert_glue.export.ops.Ops`,
so the same description becomes an ONNX graph or a shapeless MLX function. Built-in writers
cover mlxbert-core's BERT, ModernBERT and NeoBERT; a plugin package adds its own under the
entry-point group ``mlxbert.graph_writers`` (name: the encoder class as ``module:QualName``,
value: a :class:`GraphWriter`) or with :func:`register_graph_writer`. Lookup walks the
encoder class's MRO, so subclasses inherit their parent's writer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ..errors import ExportError
from ..ops import EncoderGraph, GraphInputs, Ops

ENTRY_POINT_GROUP = "mlxbert.graph_writers"


@dataclass(frozen=True)
class GraphWriter:
    """How to write one encoder family as a graph.

    write:         ``write(encoder, ops, inputs, hidden_states) -> EncoderGraph``.
    inputs:        ``inputs(encoder) -> names``: the graph inputs it reads, in order
                   (``input_ids``, ``attention_mask`` and, for segment ids,
                   ``token_type_ids``).
    max_positions: ``max_positions(encoder) -> int``: the longest input.
    check:         ``check(encoder, fmt) -> None``: raise :class:`ExportError` when this
                   encoder (its configuration) cannot be written in format ``fmt``.
    """

    write: Callable[[Any, Ops, GraphInputs, bool], EncoderGraph]
    inputs: Callable[[Any], tuple[str, ...]]
    max_positions: Callable[[Any], int]
    check: Callable[[Any, str], None] = lambda encoder, fmt: None


_BUILTIN = {
    "mlxbert_core.models.bert:BertModel": "mlxbert_glue.export.writers.bert:WRITER",
    "mlxbert_core.models.modernbert:ModernBertModel": (
        "mlxbert_glue.export.writers.modernbert:WRITER"
    ),
    "mlxbert_core.models.neobert:NeoBERT": "mlxbert_glue.export.writers.neobert:WRITER",
    # M2-BERT's writer is kept here (mlxbert-m2 depends on core only); resolved by class
    # path, so mlxbert-m2 is imported only when such an encoder is exported.
    "mlxbert_m2.model:M2BertModel": "mlxbert_glue.export.writers.m2:WRITER",
}
_REGISTRY: dict[str, GraphWriter | str] = dict(_BUILTIN)
_LOADED = False


def class_key(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_graph_writer(encoder_class: type | str, writer: GraphWriter) -> GraphWriter:
    """Register ``writer`` for ``encoder_class`` (a class or ``"module:QualName"``)."""
    key = encoder_class if isinstance(encoder_class, str) else class_key(encoder_class)
    _REGISTRY[key] = writer
    return writer


def _load_entry_points() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(ep.name, ep.value)


def _resolve(spec: GraphWriter | str) -> GraphWriter:
    if isinstance(spec, GraphWriter):
        return spec
    module, _, attr = spec.partition(":")
    writer = getattr(importlib.import_module(module), attr)
    if not isinstance(writer, GraphWriter):
        raise TypeError(f"{spec} is not a GraphWriter")
    return writer


def find_graph_writer(encoder: Any) -> GraphWriter | None:
    """The writer registered for the encoder's class or a base class, or None."""
    _load_entry_points()
    for cls in type(encoder).__mro__:
        spec = _REGISTRY.get(class_key(cls))
        if spec is not None:
            return _resolve(spec)
    return None


def graph_writer(encoder: Any, what: str) -> GraphWriter:
    """:func:`find_graph_writer` for format ``what`` (``onnx``, ``mlxfn``), or an
    :class:`ExportError` naming what is missing."""
    writer = find_graph_writer(encoder)
    if writer is None:
        names = ", ".join(key.rpartition(":")[2] for key in sorted(_REGISTRY))
        raise ExportError(
            f"cannot export {type(encoder).__name__} ({type(encoder).__module__}) as {what}: "
            f"no graph writer describes its forward pass (writers exist for {names}); a "
            f"plugin adds one under the entry-point group {ENTRY_POINT_GROUP!r}"
        )
    writer.check(encoder, what)
    return writer


__all__ = [
    "ENTRY_POINT_GROUP",
    "GraphWriter",
    "class_key",
    "find_graph_writer",
    "graph_writer",
    "register_graph_writer",
]
