"""Runtime set-up: a fast BLAS for MLX on Linux CPUs, device choice, and ``runtime_info``.

MLX's Linux CPU wheel links the reference (netlib) BLAS, which runs a float32 matrix product
at a few GFLOP/s. MLX calls the standard ``cblas_*`` symbols; :func:`preload_blas` opens an
OpenBLAS privately and points MLX's own references to those symbols at it (10-50x faster
matmuls), leaving every other library's BLAS as it was (``_private/blas_bind.py`` says why
a global preload would slow PyTorch down). ``mlxbert_core/__init__.py`` imports this module
first and calls :func:`preload_blas`; this module does not import mlx at module level.

Environment variables:

``MLXBERT_NO_OPENBLAS=1``   keep MLX's own BLAS.
``MLXBERT_OPENBLAS=PATH``   use this libopenblas instead of searching for one.
``OPENBLAS_NUM_THREADS``    OpenBLAS thread count (default: the CPUs this process may use).
``MLXBERT_DEVICE``          ``cpu`` or ``gpu``: default device for MLX arrays.
``MLXBERT_CPU_CACHE_MB``    CPU-only MLX: the buffer cache limit in MiB (default a quarter of
                            RAM; ``0`` keeps MLX's own 32 MiB).
``MLXBERT_CPU_JIT=0``       build MLX's compiled CPU kernels with MLX's own compiler flags
                            (default on Linux x86-64: vectorising flags, see
                            :func:`configure_cpu_jit`).
``MLXBERT_CACHE``           cache root (default ``~/.cache/mlxbert``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
import warnings
from typing import Any

from mlxbert_core._private import blas_bind, cpu_jit, openblas
from mlxbert_core._private.cache import cache_root
from mlxbert_core._private.cpu_info import cpu_info

__all__ = [
    "cache_root",
    "configure_cpu_buffer_cache",
    "configure_cpu_jit",
    "cpu_jit_vectorized",
    "preload_blas",
    "runtime_info",
    "set_blas_threads",
    "set_device",
]

_state: dict[str, Any] = {
    "attempted": False,
    "blas": None,  # "openblas <path>" once loaded
    "lib": None,  # the ctypes handle
    "reason": None,  # why OpenBLAS is not in use, when it is not
    "warned": False,
    "cpu_cache_mb": None,  # the buffer cache limit set for CPU-only MLX, in MiB
    "cpu_jit": None,  # the extra flags MLX's CPU kernel builds get, once set up
    "cpu_jit_note": None,  # why not, when not
}


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _warn_once(message: str) -> None:
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(f"mlxbert: {message}", RuntimeWarning, stacklevel=4)


def _linux_x86() -> bool:
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def _skip_reason() -> str | None:
    if not _linux_x86():
        return "not Linux x86-64: MLX's own BLAS is used"
    if os.environ.get("MLXBERT_NO_OPENBLAS", "").strip().lower() not in ("", "0", "false", "no"):
        return "disabled by MLXBERT_NO_OPENBLAS"
    return None


def preload_blas() -> str | None:
    """Serve MLX's BLAS calls with OpenBLAS; return ``"openblas <path>"``.

    OpenBLAS is opened with ``RTLD_LOCAL`` and only ``libmlx``'s references to BLAS / LAPACK
    symbols are pointed at it (imports ``mlx.core`` to do so; works whether or not mlx was
    imported first). Safe to call more than once. Returns ``None`` when OpenBLAS is not used
    (the reason is in ``runtime_info()["blas_note"]``): not Linux x86-64, opted out, or no
    usable library (then a one-line warning says what to install).
    """
    if _state["attempted"]:
        return _state["blas"]
    _state["attempted"] = True
    reason = _skip_reason()
    if reason:
        _state["reason"] = reason
        return None
    failures: list[str] = []
    paths = openblas.candidates()
    for path in [*paths, None]:
        if path is None:  # last resort, looked up only when needed (it runs ldconfig)
            if os.environ.get("MLXBERT_OPENBLAS"):
                break
            path = openblas.system_openblas()
            if path is None:
                break
        try:
            lib = openblas.load_private(path)
            _bind_mlx(lib)
        except _BlasBuiltIn as exc:  # nothing to serve (e.g. MLX's CUDA build): no warning
            _state["reason"] = str(exc)
            return None
        except (OSError, ValueError) as exc:
            failures.append(f"{path}: {exc}")
            continue
        _state["lib"] = lib
        if not os.environ.get("OPENBLAS_NUM_THREADS"):
            set_blas_threads(_default_threads())
        _state["blas"] = f"openblas {path}"
        return _state["blas"]
    detail = "; ".join(failures) if failures else "no OpenBLAS library found"
    _state["reason"] = detail
    _warn_once(
        f"MLX CPU matmuls use the slow reference BLAS ({detail}). "
        "`pip install ngsolve-openblas`, or set MLXBERT_OPENBLAS=/path/to/libopenblas.so "
        "(MLXBERT_NO_OPENBLAS=1 silences this)."
    )
    return None


class _BlasBuiltIn(Exception):
    """This libmlx imports no BLAS symbol: its CPU products do not go through cblas_*."""


def _bind_mlx(lib: ctypes.CDLL) -> None:
    """Point libmlx's BLAS / LAPACK imports at ``lib`` (raises OSError when impossible)."""
    import mlx.core  # noqa: F401  (loads libmlx, whose references are rewritten)

    target = blas_bind.loaded_path("libmlx.so")
    if target is None:
        raise OSError("libmlx.so is not mapped in this process")
    if "cblas_sgemm" not in blas_bind.rebind(target, lib):
        raise _BlasBuiltIn(f"{target} imports no cblas_sgemm: MLX's own BLAS is used")


def blas_threads() -> int | None:
    """OpenBLAS's thread count, or None when OpenBLAS is not loaded."""
    lib = _state["lib"]
    if lib is None:
        return None
    try:
        return int(lib.openblas_get_num_threads())
    except AttributeError:
        return None


def set_blas_threads(count: int) -> int | None:
    """Set OpenBLAS's thread count; return the previous one (None when OpenBLAS is not
    loaded, or cannot be told: then nothing changes)."""
    previous = blas_threads()
    lib = _state["lib"]
    if lib is None or previous is None:
        return None
    with contextlib.suppress(AttributeError):
        lib.openblas_set_num_threads(ctypes.c_int(count))
    return previous


def set_device(device: str) -> None:
    """Make ``"cpu"`` or ``"gpu"`` MLX's default device (errors clearly if there is no GPU)."""
    import mlx.core as mx

    name = str(device).strip().lower()
    if name == "cpu":
        mx.set_default_device(mx.cpu)
        return
    if name == "gpu":
        if not mx.is_available(mx.gpu):
            raise RuntimeError(
                "no GPU is available to MLX here: on Apple silicon MLX uses Metal; on NVIDIA "
                "install `mlx[cuda13]` instead of `mlx[cpu]`. Use set_device('cpu') otherwise."
            )
        mx.set_default_device(mx.gpu)
        return
    raise ValueError(f"unknown device {device!r}; use 'cpu' or 'gpu'")


def apply_env_device() -> None:
    """Honour ``MLXBERT_DEVICE`` (called once when mlxbert_core is imported)."""
    wanted = os.environ.get("MLXBERT_DEVICE", "").strip()
    if not wanted:
        return
    try:
        set_device(wanted)
    except (RuntimeError, ValueError) as exc:
        warnings.warn(
            f"mlxbert: ignoring MLXBERT_DEVICE={wanted!r}: {exc}", RuntimeWarning, stacklevel=3
        )


def _physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def configure_cpu_buffer_cache() -> int | None:
    """Raise MLX's buffer cache limit where MLX runs on the CPU only; return it in MiB.

    MLX's CPU allocator keeps freed buffers for reuse only up to 32 MiB. Past that, every
    intermediate of a forward or backward pass (a BERT-base layer at 32 x 128 makes several
    of 12-50 MiB) is fresh memory from the OS, and the kernel zero-fills it page by page on
    first touch: at 32 x 128 these page faults cost more time than the softmax and GELU they
    feed (measured in ``tools/bench/README.md``). With the cache at a quarter of RAM the
    buffers are reused and the faults disappear. Builds with a GPU (Metal, CUDA) keep their
    own allocator's settings. ``MLXBERT_CPU_CACHE_MB`` sets the limit (``0``: leave MLX's).
    Returns None when nothing was changed.
    """
    import mlx.core as mx

    if mx.is_available(mx.gpu):
        return None
    wanted = os.environ.get("MLXBERT_CPU_CACHE_MB", "").strip()
    if wanted:
        try:
            mib = int(wanted)
        except ValueError:
            warnings.warn(
                f"mlxbert: ignoring MLXBERT_CPU_CACHE_MB={wanted!r}: not a whole number of MiB",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        if mib <= 0:
            return None
    else:
        memory = _physical_memory_bytes()
        if not memory:
            return None
        mib = memory // 4 >> 20
    previous = mx.set_cache_limit(mib << 20)
    if not wanted and previous > mib << 20:  # someone already chose a larger cache: keep it
        mx.set_cache_limit(previous)
        return None
    _state["cpu_cache_mb"] = mib
    return mib


def _env_off(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")


def configure_cpu_jit() -> str | None:
    """Have MLX build its compiled CPU kernels with vectorising flags; return the flags.

    ``mx.compile`` on the CPU turns each fused elementwise expression (GELU, softmax, bias
    plus residual, ...) into C++ that MLX compiles with ``g++ -O3`` for baseline x86-64, where
    nothing is vectorised and ``exp``/``erf`` are scalar calls. A ``g++`` wrapper first on
    ``PATH`` adds ``-march=native`` and the flags that let GCC vectorise MLX's math (details
    and the value-preserving choice of flags in ``mlxbert_core/_private/cpu_jit.py``): a
    compiled GELU runs 8-18x faster, a softmax 2.5x. Linux x86-64 only; ``MLXBERT_CPU_JIT=0``
    opts out. Returns None when not in use (the reason is in ``runtime_info()``).
    """
    import mlx.core as mx

    if _state["cpu_jit"] or _state["cpu_jit_note"]:
        return _state["cpu_jit"]
    if not _linux_x86():
        _state["cpu_jit_note"] = "not Linux x86-64: MLX's own compiler flags"
        return None
    mlx_version = getattr(mx, "__version__", "x")
    if _env_off("MLXBERT_CPU_JIT"):
        _state["cpu_jit_note"] = "disabled by MLXBERT_CPU_JIT"
        cpu_jit.uninstall(mlx_version)
        return None
    flags, note = cpu_jit.install(cache_root() / "cpu-jit", mlx_version)
    _state["cpu_jit"], _state["cpu_jit_note"] = flags, note
    return flags


def cpu_jit_vectorized() -> bool:
    """True when MLX's compiled CPU kernels are built vectorised (:func:`configure_cpu_jit`);
    the encoders then prefer MLX's own ``exp``/``erf`` on CPU to their polynomial forms."""
    return bool(_state["cpu_jit"])


def runtime_info() -> dict[str, Any]:
    """What is live: MLX version and device, BLAS, the CPU (model, vector instruction sets),
    platform and thread count."""
    import mlx.core as mx

    if _state["blas"]:
        blas = _state["blas"]
    elif sys.platform == "darwin":
        blas = "accelerate"
    else:
        blas = "reference"
    return {
        "mlx": getattr(mx, "__version__", "unknown"),
        "device": str(mx.default_device()),
        "gpu_available": bool(mx.is_available(mx.gpu)),
        "blas": blas,
        "blas_note": _state["reason"],
        "threads": blas_threads() or _default_threads(),
        "cpu_buffer_cache_mb": _state["cpu_cache_mb"],
        "cpu_jit_flags": _state["cpu_jit"],
        "cpu_jit_note": _state["cpu_jit_note"],
        **cpu_info(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cache": str(cache_root()),
    }
