"""Torch-free checkpoint reading: real torch-written files, hand-made archives, refusals."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import sys
import zipfile
from collections import OrderedDict

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_core.checkpoints import (
    CheckpointError,
    UnsafePickleError,
    converted_cache_dir,
    load_torch_checkpoint,
    load_weights,
    state_dict_from_checkpoint,
)

M2_CONFIGS = ("glue_tiny", "retrieval_tiny", "switches_tiny")


def _np(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32)) if a.dtype == mx.bfloat16 else np.array(a)


# -- real files written by torch -------------------------------------------------------------


@pytest.mark.parametrize("name", M2_CONFIGS)
def test_pytorch_model_bin_matches_safetensors(m2_fixtures, name):
    folder = m2_fixtures / name
    reference = mx.load(str(folder / "model.safetensors"))
    state = load_torch_checkpoint(folder / "pytorch_model.bin")
    assert isinstance(state, OrderedDict)
    shared = set(state) & set(reference)
    assert len(shared) >= 50
    for key in shared:
        assert state[key].dtype == reference[key].dtype, key
        np.testing.assert_array_equal(np.array(state[key]), np.array(reference[key]), err_msg=key)
    if name != "switches_tiny":  # the one config without position embeddings
        assert state["bert.embeddings.position_ids"].dtype == mx.int64


@pytest.mark.parametrize("name", M2_CONFIGS)
def test_composer_checkpoints_fp32_and_bf16(m2_fixtures, name):
    folder = m2_fixtures / name
    reference = mx.load(str(folder / "model.safetensors"))
    fp32 = load_torch_checkpoint(folder / "composer.pt")
    bf16 = load_torch_checkpoint(folder / "composer_bf16.pt")
    assert fp32["state"]["run_name"] == "m2-fixture"
    model32, model16 = fp32["state"]["model"], bf16["state"]["model"]
    assert set(model32) == set(model16)
    checked = 0
    for key, value in model32.items():
        inner = key.removeprefix("model.")
        if inner in reference:
            np.testing.assert_array_equal(np.array(value), np.array(reference[inner]), err_msg=key)
            checked += 1
        low = model16[key]
        if value.dtype == mx.float32:
            assert low.dtype == mx.bfloat16, key
            # torch and MLX both round to nearest-even when narrowing to bfloat16
            np.testing.assert_array_equal(_np(low), _np(value.astype(mx.bfloat16)), err_msg=key)
        else:
            assert low.dtype == value.dtype, key
    assert checked >= 50
    flat = state_dict_from_checkpoint(bf16)
    assert flat.keys() == model16.keys()


def test_load_weights_converts_once_and_reuses_cache(m2_fixtures, cache_env, tmp_path):
    source = m2_fixtures / "glue_tiny" / "pytorch_model.bin"
    first = load_weights(source)
    cached = list(converted_cache_dir().glob("*.safetensors"))
    assert len(cached) == 1 and cached[0].parent == cache_env / "converted"
    assert len(cached[0].stem) == 64  # sha256 of the source file
    second = load_weights(source)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(np.array(first[key]), np.array(second[key]))
    # the cached copy is what the second load read: damage it and the load must rebuild it
    cached[0].write_bytes(b"garbage")
    third = load_weights(source)
    assert third.keys() == first.keys()
    assert mx.load(str(cached[0])).keys() == first.keys()


# -- hand-made archives: dtypes, strides, offsets ----------------------------------------------


def test_strided_offset_and_dtype_tensors(tmp_path, write_torch_zip):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    bf16_values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf16_bits = (bf16_values.view(np.uint32) >> 16).astype(np.uint16)

    def build(tensor):
        return {
            "contiguous": tensor(base),
            "transposed": tensor(base, size=(6, 4), stride=(1, 6)),
            "offset_row": tensor(base, offset=6, size=(6,), stride=(1,)),
            "half": tensor(np.array([0.5, 1.5], dtype=np.float16)),
            "int": tensor(np.array([[1, -2]], dtype=np.int32)),
            "bool": tensor(np.array([True, False, True])),
            "scalar": tensor(np.array(7, dtype=np.int64)),
            "bf16": tensor(bf16_bits.view(np.uint16).astype(np.uint16), bf16=True),
            "nested": [1, "two", {"three": 3.0}],
        }

    path = tmp_path / "archive.pt"
    write_torch_zip(path, build)
    out = load_torch_checkpoint(path)
    np.testing.assert_array_equal(np.array(out["contiguous"]), base)
    np.testing.assert_array_equal(np.array(out["transposed"]), base.T)
    np.testing.assert_array_equal(np.array(out["offset_row"]), base[1])
    assert out["half"].dtype == mx.float16 and out["int"].dtype == mx.int32
    assert out["bool"].dtype == mx.bool_ and out["bool"].tolist() == [True, False, True]
    assert out["scalar"].shape == () and out["scalar"].item() == 7
    assert out["bf16"].dtype == mx.bfloat16
    np.testing.assert_array_equal(_np(out["bf16"]), bf16_values)
    assert out["nested"] == [1, "two", {"three": 3.0}]


def test_tensor_reading_past_its_storage_is_an_error(tmp_path, write_torch_zip):
    path = tmp_path / "bad.pt"
    write_torch_zip(path, lambda t: {"w": t(np.zeros(4, np.float32), size=(8,), stride=(1,))})
    with pytest.raises(CheckpointError, match="past the end"):
        load_torch_checkpoint(path)


# -- refusals ------------------------------------------------------------------------------------


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def _hidden_in_a_tensor_rebuild(inner, monkeypatch):
    """``torch._utils._rebuild_tensor_v2(<inner>, ...)``, pickled under torch's names without
    torch: the payload sits in the arguments of the call that rebuilds a tensor. The stand-in
    modules live for the test only (tensorboardX, for one, takes any ``torch`` for torch)."""
    import types

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only its name is pickled
        return args

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    module = types.ModuleType("torch._utils")
    module._rebuild_tensor_v2 = _rebuild_tensor_v2
    if "torch" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setitem(sys.modules, "torch._utils", module)

    class Rebuild:
        def __reduce__(self):
            return (_rebuild_tensor_v2, (inner, 0, (2,), (1,), False))

    return Rebuild()


@pytest.mark.parametrize("kind", ["os.system", "posix.system", "builtins.eval", "rebuild"])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, kind, monkeypatch):
    marker = tmp_path / "executed"
    if kind in ("os.system", "rebuild"):
        payload = _Evil(os.system, f"touch {marker}")
        expected = f"{os.system.__module__}.system"  # posix.system on Linux
    elif kind == "posix.system":
        import posix

        payload = _Evil(posix.system, f"touch {marker}")
        expected = "posix.system"
    else:
        payload = _Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()")
        expected = "builtins.eval"
    if kind == "rebuild":
        payload = _hidden_in_a_tensor_rebuild(payload, monkeypatch)
    path = tmp_path / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": payload}, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert expected in message and "refusing" in message and "nothing" in message
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):
        load_weights(path, cache=False)
    assert not marker.exists()


def test_not_a_checkpoint_and_legacy_format(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match=r"not a torch\.save zip"):
        load_torch_checkpoint(junk)
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(pickle.dumps(119547037146038801333356, protocol=2))  # torch's old magic
    with pytest.raises(CheckpointError, match="legacy"):
        load_torch_checkpoint(legacy)
    with pytest.raises(FileNotFoundError):
        load_torch_checkpoint(tmp_path / "absent.bin")


def test_checkpoint_without_state_dict(tmp_path, write_torch_zip):
    path = tmp_path / "meta.pt"
    write_torch_zip(path, lambda t: {"epoch": 3, "note": "no tensors"})
    with pytest.raises(CheckpointError, match="no state dict"):
        load_weights(path, cache=False)


# -- folders, shards, corrupt files --------------------------------------------------------------


def test_sharded_safetensors_and_bin(tmp_path, fixtures_dir, write_torch_zip):
    weights = mx.load(str(fixtures_dir / "bert" / "model.safetensors"))
    keys = sorted(weights)
    half = len(keys) // 2
    st = tmp_path / "st"
    st.mkdir()
    mx.save_safetensors(
        str(st / "model-00001-of-00002.safetensors"), {k: weights[k] for k in keys[:half]}
    )
    mx.save_safetensors(
        str(st / "model-00002-of-00002.safetensors"), {k: weights[k] for k in keys[half:]}
    )
    weight_map = {
        k: f"model-0000{1 + (i >= half)}-of-00002.safetensors" for i, k in enumerate(keys)
    }
    (st / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = load_weights(st)
    assert sorted(loaded) == keys
    np.testing.assert_array_equal(np.array(loaded[keys[0]]), np.array(weights[keys[0]]))

    pt = tmp_path / "pt"
    pt.mkdir()
    arrays = {k: np.array(weights[k]) for k in keys}
    write_torch_zip(pt / "pytorch_model-1.bin", lambda t: {k: t(arrays[k]) for k in keys[:half]})
    write_torch_zip(pt / "pytorch_model-2.bin", lambda t: {k: t(arrays[k]) for k in keys[half:]})
    weight_map = {k: f"pytorch_model-{1 + (i >= half)}.bin" for i, k in enumerate(keys)}
    (pt / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = load_weights(pt, cache=False)
    assert sorted(loaded) == keys
    for key in keys:
        np.testing.assert_array_equal(np.array(loaded[key]), arrays[key])

    (pt / "pytorch_model-2.bin").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(pt, cache=False)


def test_folder_prefers_safetensors_and_lists_what_it_looked_for(tmp_path, fixtures_dir):
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors.*pytorch_model\.bin"):
        load_weights(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "nope")


def test_truncated_safetensors_is_a_clear_error(tmp_path, fixtures_dir):
    data = (fixtures_dir / "bert" / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights(tmp_path)
