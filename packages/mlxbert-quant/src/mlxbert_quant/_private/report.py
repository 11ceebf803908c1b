"""Memory accounting: bytes per layer type before and after quantization."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .selection import leaf_modules

__all__ = ["QuantizationReport", "SizeRow", "model_nbytes", "quantization_report"]

CATEGORIES = ("Linear", "Embedding", "Norm", "Other")
_NORMS = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.BatchNorm, nn.InstanceNorm)


def model_nbytes(model: nn.Module) -> int:
    """Bytes held by all of ``model``'s arrays (packed weights, scales and biases included)."""
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def _category(module: nn.Module | None) -> str:
    if isinstance(module, (nn.Linear, nn.QuantizedLinear)):
        return "Linear"
    if isinstance(module, (nn.Embedding, nn.QuantizedEmbedding)):
        return "Embedding"
    if isinstance(module, _NORMS):
        return "Norm"
    return "Other"


@dataclass
class SizeRow:
    name: str
    before: int
    after: int

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else 1.0

    def add(self, before: int, after: int) -> None:
        self.before += before
        self.after += after


@dataclass
class QuantizationReport:
    """Bytes per layer type before (float) and after (as stored now), with ratios."""

    rows: list[SizeRow]
    quantized: SizeRow
    total: SizeRow
    num_quantized: int

    def as_dict(self) -> dict:
        def row(r: SizeRow) -> dict:
            return {"before": r.before, "after": r.after, "ratio": round(r.ratio, 4)}

        return {
            **{r.name: row(r) for r in self.rows},
            "quantized layers": {**row(self.quantized), "count": self.num_quantized},
            "total": row(self.total),
        }

    def __str__(self) -> str:
        lines = [f"{'':<22}{'before':>12}{'after':>12}{'ratio':>8}"]
        for r in [*self.rows, self.quantized, self.total]:
            name = f"{r.name} ({self.num_quantized})" if r is self.quantized else r.name
            lines.append(f"{name:<22}{_mib(r.before):>12}{_mib(r.after):>12}{r.ratio:>7.3f}x")
        return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _default_float_dtype(model: nn.Module) -> mx.Dtype:
    floats = Counter(
        v.dtype for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating)
    )
    return floats.most_common(1)[0][0] if floats else mx.float32


def _float_weight_nbytes(module: nn.Module, fallback: mx.Dtype) -> int:
    rows, packed = module.weight.shape
    if module.mode == "affine":
        dtype = module.scales.dtype
    elif "bias" in module:
        dtype = module.bias.dtype
    else:
        dtype = fallback
    return rows * (packed * 32 // module.bits) * dtype.size


def quantization_report(
    model: nn.Module, *, reference: nn.Module | None = None
) -> QuantizationReport:
    """Compare ``model``'s bytes with its float version, per layer type.

    ``reference`` is the float model (exact "before" sizes). Without it the float size of each
    quantized weight is rebuilt from its shape and original dtype (the affine scales' dtype;
    else the layer bias' dtype; else the model's most common float dtype).
    """
    modules = dict(leaf_modules(model))
    ref_sizes: dict[str, int] = {}
    if reference is not None:
        ref_sizes = {k: v.nbytes for k, v in tree_flatten(reference.parameters())}
    fallback = _default_float_dtype(model)

    rows = {name: SizeRow(name, 0, 0) for name in CATEGORIES}
    quantized = SizeRow("quantized layers", 0, 0)
    quantized_paths = set()
    for key, value in tree_flatten(model.parameters()):
        path, name = key.rsplit(".", 1) if "." in key else ("", key)
        module = modules.get(path)
        is_quantized = isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding))
        if reference is not None:
            before = ref_sizes.get(key, 0)
        elif is_quantized and name == "weight":
            before = _float_weight_nbytes(module, fallback)
        elif is_quantized and name in ("scales", "biases"):
            before = 0  # these only exist after quantization
        else:
            before = value.nbytes
        rows[_category(module)].add(before, value.nbytes)
        if is_quantized:
            quantized.add(before, value.nbytes)
            quantized_paths.add(path)

    total = SizeRow("total", 0, 0)
    for row in rows.values():
        total.add(row.before, row.after)
    if reference is not None:
        # Float parameters that no longer exist in the model still count as "before".
        total.before = sum(ref_sizes.values())
    return QuantizationReport(
        rows=[rows[c] for c in CATEGORIES if rows[c].before or rows[c].after],
        quantized=quantized,
        total=total,
        num_quantized=len(quantized_paths),
    )
