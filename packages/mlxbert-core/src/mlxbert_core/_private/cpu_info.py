"""The CPU's model name and its widest vector instruction sets, for speed reports.

Benchmark ratios on CPUs depend on them (a matrix product library's AVX-512 or AMX kernels
against another's AVX2 ones), so every CPU figure names them. Must not import mlx.
"""

from __future__ import annotations

import platform

#: (label, flags that must all be present), widest first; every match is listed.
_ISA = (
    ("AMX", {"amx_tile"}),
    ("AVX-512", {"avx512f"}),
    ("AVX2", {"avx2", "fma"}),
    ("AVX", {"avx"}),
    ("SSE4.2", {"sse4_2"}),
)
_AVX512_EXTRAS = (("bf16", "avx512_bf16"), ("VNNI", "avx512_vnni"))


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def vector_isa(flags: set[str]) -> str:
    """e.g. ``"AVX-512 (bf16, VNNI), AVX2"``; ``"unknown"`` without flags."""
    names = []
    for label, needs in _ISA:
        if needs <= flags:
            if label == "AVX-512":
                extras = [name for name, flag in _AVX512_EXTRAS if flag in flags]
                label += f" ({', '.join(extras)})" if extras else ""
            names.append(label)
    return ", ".join(names[:2]) if names else "unknown"


def cpu_info() -> dict[str, str]:
    """``{"cpu": model name, "cpu_isa": widest vector instruction sets}``."""
    model, flags = _cpuinfo()
    if not flags and platform.machine() in ("arm64", "aarch64"):
        return {"cpu": model or platform.processor() or "arm64", "cpu_isa": "NEON"}
    return {"cpu": model or platform.processor() or "unknown", "cpu_isa": vector_isa(flags)}
