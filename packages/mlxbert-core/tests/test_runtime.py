"""Runtime: OpenBLAS preloading (in fresh interpreters), device choice, runtime_info."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlxbert_core as mb
from mlxbert_core._private import cpu_jit, openblas
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


@pytest.mark.skipif(not _compatible_candidates(), reason="no OpenBLAS build this CPU can run")
def test_importing_mlx_first_still_gets_openblas():
    code = "import mlx.core, json, mlxbert_core; print(json.dumps(mlxbert_core.runtime_info()))"
    info, stderr = _run(code)
    assert info["blas"].startswith("openblas") and info["blas_note"] is None, stderr
    assert "RuntimeWarning" not in stderr


# MLX's cblas_sgemm slot points into OpenBLAS, while OpenBLAS's symbols stay invisible to the
# rest of the process (a global cblas_sgemm / sgemm_ would capture other libraries' BLAS
# calls, PyTorch's among them).
NEIGHBOUR = """
import ctypes, json, os
import mlxbert_core, mlx.core as mx
from mlxbert_core._private import blas_bind
process = ctypes.CDLL(None)
target = blas_bind.loaded_path("libmlx.so")
lib = ctypes.CDLL(target, mode=os.RTLD_NOLOAD)
bias = blas_bind.load_bias(lib._handle)
slots = [off for off, _, _, name in blas_bind.ElfImports(open(target, "rb").read()).relocations
         if name == "cblas_sgemm"]
where = [blas_bind._defining_file(ctypes.c_size_t.from_address(bias + off).value)
         for off in slots]
a = mx.ones((64, 64))
print(json.dumps({"global": [s for s in ("cblas_sgemm", "sgemm_", "cblas_sgemm_batch")
                             if hasattr(process, s)], "sgemm_in": where,
                  "product": (a @ a)[0, 0].item(),
                  "blas": mlxbert_core.runtime_info()["blas"]}))
"""


@pytest.mark.skipif(not _compatible_candidates(), reason="no OpenBLAS build this CPU can run")
def test_openblas_serves_mlx_without_entering_the_global_symbol_scope():
    result, stderr = _run(NEIGHBOUR)
    assert result["blas"].startswith("openblas"), stderr
    library = os.path.realpath(result["blas"].split(" ", 1)[1])
    assert result["sgemm_in"] and set(result["sgemm_in"]) == {library}
    assert result["global"] == [] and result["product"] == 64.0
    reference, _ = _run(NEIGHBOUR, MLXBERT_NO_OPENBLAS="1")
    assert reference["sgemm_in"] and library not in reference["sgemm_in"]


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


# --------------------------------------------------------------------------------------------
# Vectorising flags for MLX's CPU kernel builds
# --------------------------------------------------------------------------------------------

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(
    not (LINUX_X86 and GXX), reason="MLX's CPU kernel builds are set up on Linux x86-64 with g++"
)
COMPILE_GELU = (
    "import json, mlxbert_core, mlx.core as mx, mlx.nn as nn; "
    "mx.eval(mx.compile(lambda x: nn.gelu(x) * 2.0)(mx.ones((64,)))); "
    "print(json.dumps(mlxbert_core.runtime_info()))"
)


def _logging_compiler(folder: Path) -> Path:
    """A ``g++`` that records its arguments, then runs the real one."""
    folder.mkdir()
    script = folder / "g++"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/calls.txt"\nexec "{GXX}" "$@"\n')
    script.chmod(0o755)
    return folder


def _kernel_builds(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if "/mlx/" in line and "/cpu/" in line]


@needs_gxx
def test_mlx_kernel_builds_get_the_vectorising_flags(tmp_path):
    fake = _logging_compiler(tmp_path / "bin")
    env = {
        "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(tmp_path / "tmp"),
        "MLXBERT_CACHE": str(tmp_path / "cache"),
    }
    (tmp_path / "tmp").mkdir()
    info, _ = _run(COMPILE_GELU, **env)
    assert info["cpu_jit_flags"] == " ".join(cpu_jit.FLAGS) and info["cpu_jit_note"] is None
    builds = _kernel_builds(fake / "calls.txt")
    assert builds and all("-march=native" in line for line in builds)
    assert (tmp_path / "tmp" / "mlx" / info["mlx"] / "cpu" / "mlxbert-cpu-jit.json").exists()

    # Opting out, same kernel folder: the kernels built with the flags are rebuilt without.
    (fake / "calls.txt").unlink()
    info, _ = _run(COMPILE_GELU, MLXBERT_CPU_JIT="0", **env)
    assert info["cpu_jit_flags"] is None and "MLXBERT_CPU_JIT" in info["cpu_jit_note"]
    builds = _kernel_builds(fake / "calls.txt")
    assert builds and not any("-march=native" in line for line in builds)
    assert not (tmp_path / "tmp" / "mlx" / info["mlx"] / "cpu" / "mlxbert-cpu-jit.json").exists()


@needs_gxx
def test_install_clears_stale_kernels_once_and_passes_other_builds_through(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    kernel_dir = cpu_jit.mlx_kernel_dir("9.9.9")
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "libstale.so").write_bytes(b"built without the flags")
    fake = _logging_compiler(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    shim = tmp_path / "shim"
    flags, note = cpu_jit.install(shim, "9.9.9")
    assert (flags, note) == (" ".join(cpu_jit.FLAGS), None)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(shim)
    assert not (kernel_dir / "libstale.so").exists()
    (kernel_dir / "libfresh.so").write_bytes(b"built with the flags")
    assert cpu_jit.install(shim, "9.9.9")[0] == flags  # same flags, same CPU: nothing removed
    assert (kernel_dir / "libfresh.so").exists()
    assert os.environ["PATH"].count(str(shim)) == 1

    # The wrapper adds the flags to MLX kernel builds only.
    source = tmp_path / "plain.cpp"
    source.write_text("int f() { return 1; }\n")
    (fake / "calls.txt").unlink()
    subprocess.run(
        ["g++", "-c", str(source), "-o", str(tmp_path / "plain.o")], check=True, timeout=120
    )
    assert "-march=native" not in (fake / "calls.txt").read_text()


def test_install_reports_a_compiler_that_rejects_the_flags(tmp_path, monkeypatch):
    bad = tmp_path / "bin"
    bad.mkdir()
    (bad / "g++").write_text('#!/bin/sh\necho "unknown option" >&2\nexit 1\n')
    (bad / "g++").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bad}{os.pathsep}/nonexistent")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    flags, note = cpu_jit.install(tmp_path / "shim", "9.9.9")
    assert flags is None and "rejects the flags" in note and "unknown option" in note
    assert os.environ["PATH"].split(os.pathsep)[0] == str(bad)  # left alone


@needs_gxx
def test_vectorised_kernels_give_the_same_values():
    # The flags change speed only: compiled kernels equal MLX's precompiled ones bit for bit.
    import mlx.core as mx
    import mlx.nn as nn

    if not mb.runtime_info()["cpu_jit_flags"]:
        pytest.skip("the vectorising flags are not in use here")
    x = mx.random.normal((50_000,)) * 6
    for fn in (mx.exp, mx.erf, mx.tanh, mx.sin, nn.gelu, mx.sigmoid):
        compiled = mx.compile(lambda v, fn=fn: fn(v) * 1.0)
        assert mx.array_equal(compiled(x), fn(x)).item(), fn


@needs_gxx
def test_processes_starting_together_share_the_kernel_folder(tmp_path):
    # Data-parallel ranks import mlxbert_core at the same moment: the one-time cleanup of the
    # kernel folder runs under a lock, and every process builds and runs its kernels.
    (tmp_path / "tmp").mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLXBERT_")}
    environ.update(TMPDIR=str(tmp_path / "tmp"), MLXBERT_CACHE=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", COMPILE_GELU],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
        )
        for _ in range(3)
    ]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in results]
    infos = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    assert all(info["cpu_jit_flags"] for info in infos)
    kernel_dir = tmp_path / "tmp" / "mlx" / infos[0]["mlx"] / "cpu"
    assert list(kernel_dir.glob("lib*.so")) and (kernel_dir / "mlxbert-cpu-jit.json").exists()


def test_runtime_info_names_the_cpu_and_its_vector_isa():
    from mlxbert_core._private.cpu_info import vector_isa

    info = mb.runtime_info()
    assert info["cpu"] and info["cpu_isa"]
    assert vector_isa({"avx", "avx2", "fma", "sse4_2"}) == "AVX2, AVX"
    assert vector_isa({"avx2", "fma", "avx512f", "avx512_bf16"}) == "AVX-512 (bf16), AVX2"
    assert vector_isa({"amx_tile", "avx512f", "avx512_vnni"}) == "AMX, AVX-512 (VNNI)"
    assert vector_isa(set()) == "unknown"
