"""Runtime: OpenBLAS preloading (in fresh interpreters), device choice, runtime_info."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys

import pytest

import mlxbert_core as mb
from mlxbert_core._private import openblas
from mlxbert_core._private.elf_soname import soname_location, with_soname

LINUX_X86 = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
INFO = "import json, mlxbert_core; print(json.dumps(mlxbert_core.runtime_info()))"


def _run(code: str, **env: str) -> tuple[dict, str]:
    # Keep only a user's MLXBERT_OPENBLAS choice (it is what the candidates are computed from).
    environ = {
        k: v
        for k, v in os.environ.items()
        if k == "MLXBERT_OPENBLAS" or not k.startswith(("MLXBERT_", "OPENBLAS_"))
    }
    environ.update(env)
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True, text=True, env=environ, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _compatible_candidates() -> list[str]:
    """Candidates whose build this CPU can run (probed privately, never bound globally)."""
    usable = []
    for path in openblas.candidates():
        try:
            lib = openblas._open(path, ctypes.RTLD_LOCAL)
            openblas.check_compatible(*openblas.build_info(lib), openblas.cpu_flags())
        except OSError:
            continue
        usable.append(path)
    return usable


@pytest.mark.skipif(not LINUX_X86, reason="OpenBLAS preloading is for Linux x86-64 only")
def test_default_env_reports_openblas_when_this_cpu_can_run_it():
    info, stderr = _run(INFO)
    usable = _compatible_candidates()
    if usable:
        assert info["blas"] == f"openblas {usable[0]}", stderr
        assert info["blas_note"] is None
    else:
        # e.g. cmeel-openblas 0.3.31 is a SKYLAKEX-only build: on a CPU without AVX-512 its
        # kernels would crash the process, so it must be refused with the reason stated.
        assert info["blas"] == "reference"
        assert info["blas_note"] and "slow reference BLAS" in stderr
        if openblas.candidates():
            # reaching the CPU check proves the library (and its libgfortran) loaded
            assert "lacks" in info["blas_note"] or "cblas" in info["blas_note"]


@pytest.mark.skipif(not LINUX_X86, reason="OpenBLAS preloading is for Linux x86-64 only")
def test_opt_out_and_bad_override():
    info, stderr = _run(INFO, MLXBERT_NO_OPENBLAS="1")
    assert info["blas"] == "reference" and "MLXBERT_NO_OPENBLAS" in info["blas_note"]
    assert "RuntimeWarning" not in stderr
    info, stderr = _run(INFO, MLXBERT_OPENBLAS="/nonexistent/libopenblas.so")  # overrides
    assert info["blas"] == "reference" and "/nonexistent/libopenblas.so" in info["blas_note"]
    assert "MLXBERT_OPENBLAS" in stderr


@pytest.mark.skipif(not LINUX_X86, reason="OpenBLAS preloading is for Linux x86-64 only")
def test_importing_mlx_first_warns_once_with_hint():
    code = "import mlx.core, json, mlxbert_core; print(json.dumps(mlxbert_core.runtime_info()))"
    info, stderr = _run(code)
    assert info["blas"] == "reference"
    assert "imported before mlxbert_core" in info["blas_note"]
    assert stderr.count("import mlxbert_core before mlx") == 1


@pytest.mark.skipif(not _compatible_candidates(), reason="no OpenBLAS build this CPU can run")
def test_openblas_threads_respects_environment():
    info, _ = _run(INFO, OPENBLAS_NUM_THREADS="1")
    assert info["blas"].startswith("openblas") and info["threads"] == 1


def test_runtime_info_fields():
    info = mb.runtime_info()
    assert {"mlx", "device", "blas", "threads", "platform", "gpu_available"} <= set(info)
    assert info["blas"] == "reference" or info["blas"].startswith(("openblas ", "accelerate"))
    assert info["threads"] >= 1


def test_set_device():
    import mlx.core as mx

    mb.set_device("cpu")
    assert mx.default_device() == mx.cpu
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        mb.set_device("tpu")
    if not mx.is_available(mx.gpu):
        with pytest.raises(RuntimeError, match="no GPU"):
            mb.set_device("gpu")
        info, stderr = _run(INFO, MLXBERT_DEVICE="gpu")
        assert "ignoring MLXBERT_DEVICE='gpu'" in stderr and "cpu" in info["device"]


def test_cpu_compatibility_rules():
    flags = {"avx", "avx2", "fma", "sse4_2"}
    with pytest.raises(openblas.IncompatibleBlas, match="avx512f"):
        openblas.check_compatible("OpenBLAS 0.3.31 NO_AFFINITY SKYLAKEX", "SKYLAKEX", flags)
    openblas.check_compatible("OpenBLAS 0.3.31 DYNAMIC_ARCH Zen", "Zen", flags)
    openblas.check_compatible("OpenBLAS HASWELL", "Haswell", flags)
    openblas.check_compatible(
        "OpenBLAS SKYLAKEX", "SKYLAKEX", flags | openblas.CORE_NEEDS["SKYLAKEX"]
    )


def test_soname_rewrite():
    libs = [p for d in openblas.site_dirs() for p in (d / "mlx_cpu.libs").glob("libgfortran*.so*")]
    if not libs:
        pytest.skip("no bundled libgfortran (mlx[cpu] wheel) here")
    data = libs[0].read_bytes()
    start, length = soname_location(data)
    assert data[start : start + length].decode() == libs[0].name
    patched = with_soname(data, "libgfortran.so.5")
    assert len(patched) == len(data)
    new_start, new_length = soname_location(patched)
    assert new_start == start and patched[new_start : new_start + new_length] == b"libgfortran.so.5"
    assert patched[:start] == data[:start] and patched[start + length :] == data[start + length :]
    with pytest.raises(ValueError, match="longer"):
        with_soname(data, "x" * (length + 1))
    with pytest.raises(ValueError, match="ELF"):
        soname_location(b"not an elf file")


CACHE = (
    "import json, mlxbert_core, mlx.core as mx; "
    "print(json.dumps([mlxbert_core.runtime_info()['cpu_buffer_cache_mb'], "
    "mx.set_cache_limit(0) >> 20]))"
)


def _mlx_has_gpu() -> bool:
    import mlx.core as mx

    return bool(mx.is_available(mx.gpu))


def test_cpu_buffer_cache_limit_default_override_and_opt_out():
    if _mlx_has_gpu():
        pytest.skip("the buffer cache is only raised where MLX runs on the CPU alone")
    (mib, limit), _ = _run(CACHE)
    assert mib is not None and mib > 32 and limit == mib
    (mib, limit), _ = _run(CACHE, MLXBERT_CPU_CACHE_MB="100")
    assert (mib, limit) == (100, 100)
    (mib, limit), _ = _run(CACHE, MLXBERT_CPU_CACHE_MB="0")
    assert mib is None and limit == 32  # MLX's own default
    (mib, limit), err = _run(CACHE, MLXBERT_CPU_CACHE_MB="lots")
    assert mib is None and limit == 32 and "MLXBERT_CPU_CACHE_MB" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts Linux page faults")
def test_large_intermediates_reuse_cached_buffers_instead_of_faulting_fresh_pages():
    # What the raised cache is for: a repeated forward-sized elementwise computation (four
    # 48 MiB intermediates) must not ask the OS for fresh, zero-filled pages on every call.
    import resource

    import mlx.core as mx

    if _mlx_has_gpu():
        pytest.skip("the buffer cache is only raised where MLX runs on the CPU alone")
    x = mx.random.normal((12 << 20,))
    mx.eval(x)

    def step():
        mx.eval(mx.sum(mx.maximum(x * 2.0, 0.0) + mx.exp(x - 1.0) * x))

    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    assert faults < 2000, f"{faults:.0f} page faults per call (48 MiB arrays are 12,288 pages)"
