"""Read ``torch.save`` files (``pytorch_model.bin``, Composer ``.pt``) without PyTorch.

A ``torch.save`` file (PyTorch >= 1.6) is a zip archive: ``<name>/data.pkl`` is a pickle of the
saved object, in which every tensor is a call to ``torch._utils._rebuild_tensor_v2`` on a
*persistent id* ``('storage', torch.FloatStorage, key, location, numel)``; the storage bytes
are the archive member ``<name>/data/<key>``.

Unpickling runs whatever callables the pickle names, so this reader resolves only an explicit
allow-list of globals (containers and tensor rebuilders, implemented here without torch). Any
other global (``os.system``, ``builtins.eval``, a custom class) stops the load with
:class:`UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

# Legacy typed-storage class name -> element dtype. "bfloat16" has no NumPy dtype: its bits
# are read as uint16 and reinterpreted by MLX.
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class UnsafePickleError(pickle.UnpicklingError):
    """The checkpoint's pickle names a global outside the allow-list; nothing was executed."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside the pickle."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage's raw bytes, viewed as a flat NumPy array of its element type."""

    def __init__(self, flat: np.ndarray, dtype: str):
        self.flat = flat
        self.dtype = dtype


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> mx.array:
    flat = storage.flat
    size = tuple(int(s) for s in size)
    count = int(np.prod(size)) if size else 1
    if count == 0:
        values = np.zeros(size, dtype=flat.dtype)
    else:
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if storage_offset < 0 or last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor of shape {size} reads past the end of its storage ({flat.size} elements)"
            )
        strides = tuple(int(st) * flat.itemsize for st in stride)
        view = np.lib.stride_tricks.as_strided(flat[storage_offset:], shape=size, strides=strides)
        values = view.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    array = mx.array(values)
    if storage.dtype == "bfloat16":
        array = array.view(mx.bfloat16)
    return array


def _rebuild_parameter(data: mx.array, requires_grad: bool = False, backward_hooks: Any = None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell ``bytes`` objects as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode(encoding)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("_codecs", "encode"): _codecs_encode,
}
_ALLOWED.update({("torch", name): _StorageType(name) for name in STORAGE_DTYPES})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: str, byteorder: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._byteorder = byteorder
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles name Python 2 modules (``__builtin__``); map them as pickle does.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self._source}: its pickle asks for `{module}.{name}`, which "
                "is not a tensor, storage or plain container. Only checkpoints made of tensors, "
                "numbers, strings, lists and dicts can be read without PyTorch; nothing in the "
                "file was executed. If you trust the file, convert it to safetensors with PyTorch."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._source}: unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"{self._source}: unsupported storage {storage_type!r}")
        cached = self._storages.get(key)
        if cached is None:
            try:
                raw = self._archive.read(f"{self._prefix}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(
                    f"{self._source}: storage {key} is missing from the archive (truncated file?)"
                ) from None
            np_dtype = "uint16" if storage_type.dtype == "bfloat16" else storage_type.dtype
            dtype = np.dtype(np_dtype).newbyteorder("<" if self._byteorder == "little" else ">")
            usable = len(raw) - len(raw) % dtype.itemsize
            flat = np.frombuffer(raw[:usable], dtype=dtype).astype(dtype.newbyteorder("="))
            cached = _Storage(flat, storage_type.dtype)
            self._storages[key] = cached
        return cached


def load(path: str | Path) -> Any:
    """Unpickle a ``torch.save`` zip file; tensors come back as ``mx.array``."""
    path = Path(path)
    source = str(path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(2)
        if head[:1] == b"\x80":
            raise pickle.UnpicklingError(
                f"{source} uses the legacy (pre-1.6) torch.save format, which is not supported; "
                "re-save it with a recent PyTorch (or convert it to safetensors)."
            )
        raise pickle.UnpicklingError(
            f"{source} is not a torch.save zip archive (truncated or not a PyTorch checkpoint)"
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not pickles:
            raise pickle.UnpicklingError(f"{source}: no data.pkl in the archive")
        record = min(pickles, key=len)
        prefix = record[: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in archive.namelist():
            byteorder = archive.read(f"{prefix}byteorder").decode().strip() or "little"
        with archive.open(record) as handle:
            return _RestrictedUnpickler(handle, archive, prefix, source, byteorder).load()
