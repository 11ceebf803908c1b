"""Find, vet and privately load an OpenBLAS with standard ``cblas_*`` symbols.

Must not import mlx.

Two traps handled here:

* a wheel's OpenBLAS may need ``libgfortran.so.5``, which many machines lack; the one the
  ``mlx[cpu]`` wheel ships (renamed by auditwheel) is reused through a SONAME-patched copy
  (see :mod:`elf_soname`);
* a wheel may be built for one CPU (``cmeel-openblas`` 0.3.31 is a SKYLAKEX build, not
  DYNAMIC_ARCH): its kernels die with SIGILL on CPUs without AVX-512, which no Python code can
  catch. Each library is therefore first opened privately (``RTLD_LOCAL``), its build target
  read with ``openblas_get_config``/``openblas_get_corename`` and compared with the CPU flags,
  and only a compatible one is used.

The library stays private (``RTLD_LOCAL``): other libraries in the process never see its
symbols (see :mod:`blas_bind` for how MLX's references reach it, and why not globally).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from mlxbert_core._private.cache import cache_root
from mlxbert_core._private.elf_soname import with_soname

_AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
#: CPU flags (as in /proc/cpuinfo) that a fixed-target OpenBLAS build executes.
CORE_NEEDS: dict[str, set[str]] = {
    "SKYLAKEX": _AVX512,
    "COOPERLAKE": _AVX512 | {"avx512_bf16"},
    "SAPPHIRERAPIDS": _AVX512 | {"avx512_bf16"},
    "ZEN": {"avx2", "fma"},
    "HASWELL": {"avx2", "fma"},
    "SANDYBRIDGE": {"avx"},
}


class IncompatibleBlas(OSError):
    """The library loads but its kernels need instructions this CPU lacks."""


def site_dirs() -> list[Path]:
    seen: list[Path] = []
    for entry in sys.path:
        if entry and entry != "." and os.path.isdir(entry):
            path = Path(entry)
            if path not in seen:
                seen.append(path)
    return seen


def candidates() -> list[str]:
    """OpenBLAS libraries to try, best first.

    ``$MLXBERT_OPENBLAS`` (a path) if set; else the ``cmeel-openblas`` and ``ngsolve-openblas``
    wheels (both ship standard ``cblas_*`` symbols). Wheels whose symbols are prefixed (numpy's,
    ``scipy-openblas32``) cannot serve MLX and are not listed. A system ``libopenblas`` is
    tried by the caller last (:func:`system_openblas`).
    """
    env = os.environ.get("MLXBERT_OPENBLAS", "").strip()
    if env:
        return [str(Path(env).expanduser())]
    found: list[str] = []
    for site_dir in site_dirs():
        lib_dir = site_dir / "cmeel.prefix" / "lib"
        for name in ("libopenblas.so.0", "libopenblas.so"):
            if (lib_dir / name).is_file():
                found.append(str(lib_dir / name))
                break
        found.extend(
            str(p) for p in sorted((site_dir / "ngsolve_openblas").glob("libopenblas*.so*"))
        )
    return found


def system_openblas() -> str | None:
    from ctypes.util import find_library  # runs ldconfig: only used when no wheel works

    return find_library("openblas")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _bundled_gfortran() -> tuple[Path, list[Path]] | None:
    """The libgfortran shipped (renamed) in the mlx[cpu] wheel and the libraries it needs."""
    for site_dir in site_dirs():
        libs = site_dir / "mlx_cpu.libs"
        if libs.is_dir():
            gfortran = sorted(libs.glob("libgfortran*.so*"))
            if gfortran:
                return gfortran[0], sorted(libs.glob("libquadmath*.so*"))
    return None


def _gfortran_with_standard_soname(source: Path) -> Path:
    """A cached copy of ``source`` whose SONAME reads ``libgfortran.so.5``."""
    digest = hashlib.sha256(f"{source.name}:{source.stat().st_size}".encode()).hexdigest()[:16]
    name = f"libgfortran-soname5-{digest}.so"
    for folder in (cache_root() / "runtime", Path(tempfile.gettempdir()) / "mlxbert-runtime"):
        target = folder / name
        if target.is_file():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            patched = with_soname(source.read_bytes(), "libgfortran.so.5")
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(patched)
            os.replace(tmp, target)  # atomic: concurrent processes never see half a file
            return target
        except OSError:
            continue
    raise OSError("no writable cache folder for the libgfortran copy")


def _open(path: str, mode: int) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(path, mode=mode)
    except OSError as exc:
        if "libgfortran" not in str(exc):
            raise
        bundled = _bundled_gfortran()
        if bundled is None:
            raise
        gfortran, deps = bundled
        # Matched by SONAME when OpenBLAS (and the gfortran copy) ask for them; like OpenBLAS,
        # they stay out of the global symbol scope.
        for dep in deps:
            ctypes.CDLL(str(dep), mode=ctypes.RTLD_LOCAL)
        ctypes.CDLL(str(_gfortran_with_standard_soname(gfortran)), mode=ctypes.RTLD_LOCAL)
        return ctypes.CDLL(path, mode=mode)


def _text(lib: ctypes.CDLL, symbol: str) -> str:
    try:
        func = getattr(lib, symbol)
    except AttributeError:
        return ""
    func.restype = ctypes.c_char_p
    value = func()
    return value.decode(errors="replace") if value else ""


def build_info(lib: ctypes.CDLL) -> tuple[str, str]:
    """``(config, corename)`` of a loaded OpenBLAS."""
    return _text(lib, "openblas_get_config"), _text(lib, "openblas_get_corename")


def check_compatible(config: str, corename: str, flags: set[str]) -> None:
    """Raise :class:`IncompatibleBlas` when a fixed-target build needs missing CPU flags."""
    if "DYNAMIC_ARCH" in config.upper() or not flags:
        return
    needs = CORE_NEEDS.get(corename.upper(), set())
    missing = sorted(needs - flags)
    if missing:
        raise IncompatibleBlas(
            f"built for {corename} only, and this CPU lacks {', '.join(missing)}"
        )


def load_private(path: str) -> ctypes.CDLL:
    """Open ``path`` privately (``RTLD_LOCAL``) and vet it: standard symbols, and a build
    this CPU can run."""
    lib = _open(path, ctypes.RTLD_LOCAL)
    if not hasattr(lib, "cblas_sgemm"):
        raise OSError("no standard cblas_sgemm symbol (prefixed build?)")
    config, corename = build_info(lib)
    check_compatible(config, corename, cpu_flags())
    return lib
