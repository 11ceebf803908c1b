"""The quantization modes MLX supports and the per-layer settings built from them.

The table mirrors ``mlx.core.quantize`` in MLX 0.32 (checked on the CPU backend): affine
quantization stores a scale and a bias per group in the input dtype, the micro-scaling float
formats store one 8-bit scale per group and no bias.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["MODES", "LayerSettings", "ModeSpec", "QuantizationError", "resolve_settings"]


class QuantizationError(ValueError):
    """Raised when a quantization request, a saved folder or a checkpoint is invalid."""


@dataclass(frozen=True)
class ModeSpec:
    """What one quantization mode accepts."""

    name: str
    bits: tuple[int, ...]
    group_sizes: tuple[int, ...]
    default_bits: int
    default_group_size: int
    has_biases: bool
    description: str


def _microscaling(name: str, bits: int, group_size: int, description: str) -> ModeSpec:
    """A micro-scaling float format: one element width, one group size (its defaults too),
    one shared scale per group and no bias."""
    return ModeSpec(
        name,
        bits=(bits,),
        group_sizes=(group_size,),
        default_bits=bits,
        default_group_size=group_size,
        has_biases=False,
        description=description,
    )


MODES: dict[str, ModeSpec] = {
    spec.name: spec
    for spec in (
        ModeSpec(
            "affine",
            bits=(1, 2, 3, 4, 5, 6, 8),
            group_sizes=(32, 64, 128),
            default_bits=4,
            default_group_size=64,
            has_biases=True,
            description="integer codes with a scale and a bias per group (input dtype)",
        ),
        _microscaling("mxfp4", 4, 32, "OCP MX FP4 (E2M1) with one E8M0 scale per 32 values"),
        _microscaling("mxfp8", 8, 32, "OCP MX FP8 (E4M3) with one E8M0 scale per 32 values"),
        _microscaling("nvfp4", 4, 16, "NVIDIA FP4 (E2M1) with one E4M3 scale per 16 values"),
    )
}


@dataclass(frozen=True)
class LayerSettings:
    """How one layer is quantized: the keyword arguments of ``to_quantized``."""

    bits: int
    group_size: int
    mode: str

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def problems(self, in_features: int) -> list[str]:
        """Everything wrong with these settings for a weight whose rows have ``in_features``."""
        spec = MODES[self.mode]
        found = []
        if self.bits not in spec.bits:
            found.append(
                f"bits={self.bits} is not supported by mode {self.mode!r} "
                f"(supported: {', '.join(map(str, spec.bits))})"
            )
        if self.group_size not in spec.group_sizes:
            found.append(
                f"group_size={self.group_size} is not supported by mode {self.mode!r} "
                f"(supported: {', '.join(map(str, spec.group_sizes))})"
            )
        elif in_features % self.group_size:
            found.append(
                f"group_size={self.group_size} does not divide the input dimension {in_features}"
            )
        return found


def resolve_settings(bits: int | None, group_size: int | None, mode: str) -> LayerSettings:
    """Fill unset ``bits`` / ``group_size`` with the mode's defaults (unknown modes raise)."""
    if mode not in MODES:
        raise QuantizationError(
            f"Unknown quantization mode {mode!r}; choose one of {', '.join(MODES)}."
        )
    spec = MODES[mode]
    for name, value in (("bits", bits), ("group_size", group_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise QuantizationError(f"{name} must be an integer, got {value!r}.")
    return LayerSettings(
        bits=spec.default_bits if bits is None else bits,
        group_size=spec.default_group_size if group_size is None else group_size,
        mode=mode,
    )
