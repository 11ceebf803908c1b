"""Point one loaded library's BLAS / LAPACK imports at a privately loaded OpenBLAS.

Why not load OpenBLAS into the global symbol scope (``RTLD_GLOBAL``)? Every library loaded
after it then resolves its own BLAS names there first. PyTorch's CPU wheel, for one, carries
MKL inside ``libtorch_cpu.so`` and calls it through exported names (``sgemm_``,
``cblas_sgemm_batch``, LAPACK); with OpenBLAS global, those calls land in OpenBLAS, whose
thread pool then competes with PyTorch's OpenMP threads for the same cores: a PyTorch BERT
forward ran 1.5x slower in a process that had imported mlxbert first.

Instead OpenBLAS is opened with ``RTLD_LOCAL`` (nothing else can see it) and only MLX's own
references are redirected: the relocation entries of ``libmlx.so`` (its global offset table)
that name a symbol OpenBLAS defines get OpenBLAS's address, exactly the binding a global
preload used to give MLX, for MLX alone. This works whether ``mlx.core`` was imported before or
after. Linux x86-64, 64-bit ELF only. Must not import mlx.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
from pathlib import Path

_PT_LOAD, _PT_DYNAMIC, _PT_GNU_RELRO = 1, 2, 0x6474E552
_DT_NULL, _DT_PLTRELSZ, _DT_STRTAB, _DT_SYMTAB, _DT_RELA, _DT_RELASZ, _DT_JMPREL = (
    0, 2, 5, 6, 7, 8, 23,
)  # fmt: skip
_R_X86_64_64, _R_X86_64_GLOB_DAT, _R_X86_64_JUMP_SLOT = 1, 6, 7
_RTLD_DI_LINKMAP = 2
_PROT_READ, _PROT_WRITE = 1, 2


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    for name in ("dlinfo", "dladdr", "mprotect"):
        if not hasattr(libc, name):  # glibc before 2.34 keeps dlinfo / dladdr in libdl
            return ctypes.CDLL("libdl.so.2", use_errno=True)
    return libc


class ElfImports:
    """The relocations of a 64-bit little-endian ELF shared object that bind to symbols it
    imports: ``(offset, type, addend, name)``, plus its read-only-after-load ranges."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not a 64-bit little-endian ELF file")
        e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
        e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
        loads: list[tuple[int, int, int]] = []
        self.relro: list[tuple[int, int]] = []
        dynamic = None
        for i in range(e_phnum):
            base = e_phoff + i * e_phentsize
            p_type = struct.unpack_from("<I", data, base)[0]
            p_offset, p_vaddr = struct.unpack_from("<QQ", data, base + 8)
            p_filesz, p_memsz = struct.unpack_from("<QQ", data, base + 32)
            if p_type == _PT_LOAD:
                loads.append((p_offset, p_vaddr, p_filesz))
            elif p_type == _PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
            elif p_type == _PT_GNU_RELRO:
                self.relro.append((p_vaddr, p_vaddr + p_memsz))
        if dynamic is None:
            raise ValueError("ELF file has no dynamic section")

        def offset(vaddr: int) -> int:
            for p_offset, p_vaddr, p_filesz in loads:
                if p_vaddr <= vaddr < p_vaddr + p_filesz:
                    return vaddr - p_vaddr + p_offset
            raise ValueError(f"address {vaddr:#x} is not in any PT_LOAD segment")

        tags: dict[int, int] = {}
        for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
            tag, val = struct.unpack_from("<qQ", data, pos)
            if tag == _DT_NULL:
                break
            tags.setdefault(tag, val)
        if _DT_SYMTAB not in tags or _DT_STRTAB not in tags:
            raise ValueError("ELF file has no dynamic symbol table")
        symtab, strtab = offset(tags[_DT_SYMTAB]), offset(tags[_DT_STRTAB])

        def name(index: int) -> str | None:
            st_name, _info, _other, st_shndx = struct.unpack_from(
                "<IBBH", data, symtab + 24 * index
            )
            if st_shndx != 0:  # defined here: not an import
                return None
            end = data.index(b"\0", strtab + st_name)
            return data[strtab + st_name : end].decode(errors="replace")

        self.relocations: list[tuple[int, int, int, str]] = []
        for table, size in ((_DT_RELA, _DT_RELASZ), (_DT_JMPREL, _DT_PLTRELSZ)):
            if table not in tags or not tags.get(size):
                continue
            start = offset(tags[table])
            for pos in range(start, start + tags[size], 24):
                r_offset, r_info, r_addend = struct.unpack_from("<QQq", data, pos)
                r_type, r_sym = r_info & 0xFFFFFFFF, r_info >> 32
                if r_sym and r_type in (_R_X86_64_64, _R_X86_64_GLOB_DAT, _R_X86_64_JUMP_SLOT):
                    symbol = name(r_sym)
                    if symbol:
                        self.relocations.append((r_offset, r_type, r_addend, symbol))


def load_bias(handle: int) -> int:
    """The load address (``l_addr``) of a library opened with ``dlopen``."""
    libc = _libc()
    link_map = ctypes.c_void_p()
    if libc.dlinfo(ctypes.c_void_p(handle), _RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
        raise OSError("dlinfo(RTLD_DI_LINKMAP) failed")
    return ctypes.c_size_t.from_address(link_map.value).value  # struct link_map { l_addr, ...}


def _defining_file(address: int) -> str | None:
    info = _DlInfo()
    if not _libc().dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(info.dli_fname.decode(errors="replace"))


def _write_pointer(address: int, value: int, relro: bool) -> None:
    if not relro:
        ctypes.c_size_t.from_address(address).value = value
        return
    libc = _libc()
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = address & ~(mmap.PAGESIZE - 1)
    if libc.mprotect(ctypes.c_void_p(page), mmap.PAGESIZE, _PROT_READ | _PROT_WRITE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed on a relocation page")
    try:
        ctypes.c_size_t.from_address(address).value = value
    finally:
        libc.mprotect(ctypes.c_void_p(page), mmap.PAGESIZE, _PROT_READ)


def loaded_path(file_name: str) -> str | None:
    """The path of a mapped library of this process whose file name is ``file_name``."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and Path(parts[5].strip()).name == file_name:
                    return parts[5].strip()
    except OSError:
        pass
    return None


def is_blas_name(symbol: str) -> bool:
    """BLAS / LAPACK entry points: ``cblas_*``, ``LAPACKE_*`` and Fortran names (``sgemm_``)."""
    if symbol.startswith(("cblas_", "LAPACKE_")):
        return True
    return symbol.endswith("_") and symbol[:1].isalpha() and symbol.islower()


def rebind(target: str, provider: ctypes.CDLL) -> list[str]:
    """Point every import of the loaded library ``target`` that ``provider`` (a library opened
    with ``RTLD_LOCAL``) defines itself at ``provider``'s definition; return the names.

    ``target`` must already be loaded (it is opened with ``RTLD_NOLOAD``)."""
    lib = ctypes.CDLL(target, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
    bias = load_bias(lib._handle)
    imports = ElfImports(Path(target).read_bytes())
    # The provider's file as the loader sees it (it may have been opened by a bare soname).
    provider_file = _defining_file(ctypes.cast(provider.cblas_sgemm, ctypes.c_void_p).value)
    found: dict[str, int | None] = {}
    bound: list[str] = []
    for r_offset, r_type, addend, symbol in imports.relocations:
        if not is_blas_name(symbol):
            continue
        if symbol not in found:
            try:
                address = ctypes.cast(getattr(provider, symbol), ctypes.c_void_p).value
            except AttributeError:
                address = None
            # dlsym on a handle also searches the library's own dependencies (libc, libm):
            # only OpenBLAS's own definitions are taken.
            if address is not None and _defining_file(address) != provider_file:
                address = None
            found[symbol] = address
        address = found[symbol]
        if address is None:
            continue
        value = address + addend if r_type == _R_X86_64_64 else address
        relro = any(lo <= r_offset < hi for lo, hi in imports.relro)
        _write_pointer(bias + r_offset, value, relro)
        if symbol not in bound:
            bound.append(symbol)
    return bound
