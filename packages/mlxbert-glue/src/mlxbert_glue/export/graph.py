"""The export graph of a subject, for any :class:`~.ops.Ops` backend: the encoder through
its family's writer, then the task model's pooling and head, or the sentence embedding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ExportError
from .ops import GraphInputs, Ops
from .source import ExportSubject
from .writers import GraphWriter, graph_writer
from .writers.heads import (
    check_task_model,
    write_head,
    write_pooling,
    write_sentence_embedding,
)

EMBEDDING_POOLINGS = ("mean", "cls", "max", "pooler")


@dataclass(frozen=True)
class GraphSpec:
    """What the graph computes besides the encoder.

    pooling:   for a plain encoder, also output ``sentence_embedding`` pooled this way
               (``mean``, ``cls``, ``max``, ``pooler``), L2-normalised with ``normalize``.
    """

    pooling: str | None = None
    normalize: bool = True


@dataclass(frozen=True)
class GraphPlan:
    writer: GraphWriter
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, tuple[str | int, ...]], ...]
    max_positions: int


def hidden_size_of(encoder: Any) -> int:
    """The encoder's width (``hidden_size``, or its config's)."""
    value = getattr(encoder, "hidden_size", None)
    if value is None:
        value = encoder.config.hidden_size
    return int(value)


def plan_graph(subject: ExportSubject, spec: GraphSpec, what: str) -> GraphPlan:
    """Check that ``subject`` can be written as a graph (before anything is written)."""
    writer = graph_writer(subject.encoder, what)
    if subject.is_task_model:
        check_task_model(subject.model)
        head = subject.model.head
        width = int(head.output.weight.shape[0])
        dims: tuple[str | int, ...] = ("batch", width)
        if type(head).task == "regression" and head.get_config().get("uncertainty"):
            dims = ("batch", int(head.num_targets), 2)
        outputs: tuple = (("logits", dims),)
        if spec.pooling is not None:
            raise ExportError("pooling applies to plain encoders; a task model outputs logits")
    else:
        hidden = hidden_size_of(subject.encoder)
        outputs = (("last_hidden_state", ("batch", "sequence", hidden)),)
        if spec.pooling is not None:
            if spec.pooling not in EMBEDDING_POOLINGS:
                raise ExportError(
                    f"unknown pooling {spec.pooling!r}; use {', '.join(EMBEDDING_POOLINGS)}"
                )
            if spec.pooling == "pooler" and not getattr(subject.encoder, "has_pooler", False):
                raise ExportError("pooling 'pooler' needs an encoder with a pooler (BERT's)")
            outputs += (("sentence_embedding", ("batch", hidden)),)
    return GraphPlan(
        writer=writer,
        inputs=tuple(writer.inputs(subject.encoder)),
        outputs=outputs,
        max_positions=int(writer.max_positions(subject.encoder)),
    )


def write_graph(
    subject: ExportSubject, plan: GraphPlan, spec: GraphSpec, ops: Ops, inputs: GraphInputs
) -> list[Any]:
    """The output tensors, in ``plan.outputs`` order."""
    weighted = subject.is_task_model and subject.model.pooler.needs_hidden_states
    graph = plan.writer.write(subject.encoder, ops, inputs, weighted)
    if subject.is_task_model:
        pooled = write_pooling(subject.model.pooler, graph, ops)
        return [write_head(subject.model.head, pooled, ops)]
    outputs = [graph.last_hidden_state]
    if spec.pooling is not None:
        outputs.append(write_sentence_embedding(graph, spec.pooling, spec.normalize, ops))
    return outputs


__all__ = ["EMBEDDING_POOLINGS", "GraphPlan", "GraphSpec", "plan_graph", "write_graph"]
