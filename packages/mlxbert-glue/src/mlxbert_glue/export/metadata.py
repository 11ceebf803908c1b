"""What an exported model says about itself: ONNX metadata properties and ``export.json``."""

from __future__ import annotations

import json
from typing import Any

from .graph import GraphPlan, GraphSpec
from .source import ExportSubject

EXPORT_FILE = "export.json"
FORMAT_VERSION = 1


def _thresholds(head_config: dict[str, Any]) -> Any:
    fitted = head_config.get("fitted") or {}
    for key in ("thresholds", "threshold"):
        if key in fitted:
            return fitted[key]
    return None


def describe(
    subject: ExportSubject,
    plan: GraphPlan,
    spec: GraphSpec,
    *,
    fmt: str,
    dtype: str,
    max_length: int,
) -> dict[str, Any]:
    """The export's description (JSON-serialisable)."""
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "kind": "classifier" if subject.is_task_model else "encoder",
        "architecture": subject.encoder.architecture,
        "source": subject.source,
        "dtype": dtype,
        "max_length": int(max_length),
        "inputs": list(plan.inputs),
        "outputs": {name: list(dims) for name, dims in plan.outputs},
    }
    if subject.is_task_model:
        info = subject.info
        head = subject.model.head
        config = head.get_config()
        labels = info.label_names(info.num_labels) if info.head_task != "regression" else None
        data |= {
            "task": info.task,
            "head_type": info.head_task,
            "prediction": type(head).prediction_kind(),
            "labels": labels,
            "id2label": {str(i): name for i, name in enumerate(labels or [])},
            "thresholds": _thresholds(config),
            "head": config,
            "text_template": info.text_template,
        }
    else:
        data |= {"pooling": spec.pooling, "normalize": spec.normalize if spec.pooling else None}
    return data


def onnx_properties(description: dict[str, Any]) -> dict[str, str]:
    """ONNX ``metadata_props``: every entry as a string (JSON for structured values)."""
    out = {}
    for key, value in description.items():
        name = key if key == "id2label" else f"mlxbert.{key}"
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


__all__ = ["EXPORT_FILE", "FORMAT_VERSION", "describe", "onnx_properties"]
