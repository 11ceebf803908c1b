"""Give a copy of a shared library a different SONAME (no external tools).

Why: the ``cmeel-openblas`` wheel's ``libopenblas.so.0`` lists ``libgfortran.so.5`` as a
dependency but does not ship it, and many Linux machines do not have it installed. The
``mlx[cpu]`` wheel does ship a libgfortran 5, renamed by auditwheel
(``libgfortran-<hash>.so.5.0.0``, with a matching SONAME). The dynamic loader satisfies a
``DT_NEEDED`` entry with an already-loaded library whose SONAME equals the needed name, so a
copy of that libgfortran whose SONAME reads ``libgfortran.so.5``, loaded first, lets OpenBLAS
load. Only the SONAME string is rewritten in place (the new name must not be longer); nothing
else in the file changes. Must not import mlx.
"""

from __future__ import annotations

import struct

_PT_LOAD = 1
_PT_DYNAMIC = 2
_DT_NULL = 0
_DT_STRTAB = 5
_DT_SONAME = 14


def _vaddr_to_offset(segments: list[tuple[int, int, int]], vaddr: int) -> int:
    for p_offset, p_vaddr, p_filesz in segments:
        if p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise ValueError(f"address {vaddr:#x} is not in any PT_LOAD segment")


def soname_location(data: bytes) -> tuple[int, int]:
    """Return ``(file offset, length)`` of the SONAME string of a 64-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(e_phnum):
        base = e_phoff + i * e_phentsize
        p_type = struct.unpack_from("<I", data, base)[0]
        p_offset, p_vaddr = struct.unpack_from("<QQ", data, base + 8)
        p_filesz = struct.unpack_from("<Q", data, base + 32)[0]
        if p_type == _PT_LOAD:
            loads.append((p_offset, p_vaddr, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        raise ValueError("ELF file has no dynamic section")
    strtab = soname = None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, pos)
        if tag == _DT_NULL:
            break
        if tag == _DT_STRTAB:
            strtab = val
        elif tag == _DT_SONAME:
            soname = val
    if strtab is None or soname is None:
        raise ValueError("ELF file has no SONAME")
    start = _vaddr_to_offset(loads, strtab) + soname
    end = data.index(b"\0", start)
    return start, end - start


def with_soname(data: bytes, new_soname: str) -> bytes:
    """A copy of the ELF image ``data`` whose SONAME is ``new_soname`` (not longer than the old)."""
    start, length = soname_location(data)
    encoded = new_soname.encode()
    if len(encoded) > length:
        raise ValueError(f"new SONAME {new_soname!r} is longer than the old one ({length} bytes)")
    patched = bytearray(data)
    patched[start : start + length] = encoded + b"\0" * (length - len(encoded))
    return bytes(patched)
