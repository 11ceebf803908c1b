"""Exporters: ONNX graphs (run by onnxruntime) and MLX function files equal the MLX models
within 1e-4 on tiny encoders of every architecture and on the real all-MiniLM-L6-v2, at two
batch sizes and three lengths with padding; Hugging Face folders; bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import mlxbert_core  # noqa: F401  isort: skip  (first: it loads OpenBLAS before mlx)

import mlx.core as mx
import numpy as np
import onnx
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from mlxbert_core import from_pretrained, get_preset
from mlxbert_core.models.bert import BertModel
from mlxbert_core.registry import get_architecture
from mlxbert_glue import (
    Classifier,
    ExportError,
    create_task_model,
    export_model,
    save_task_model,
)
from mlxbert_glue.export import writers
from mlxbert_glue.export.formats import mlxfn as mlxfn_format
from mlxbert_glue.export.formats import onnx as onnx_format
from mlxbert_glue.export.graph import GraphSpec, plan_graph
from mlxbert_glue.export.reference import max_difference, mlx_outputs
from mlxbert_glue.export.source import ExportSubject, open_subject
from mlxbert_glue.task_model.files import current_umask

TINY_BERT = Path(__file__).resolve().parent / "fixtures" / "tiny-bert"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

#: Configs of tiny ModernBERT / NeoBERT encoders sharing tiny-bert's 1024-word tokenizer.
#: ModernBERT's local window is 8 (half window 4): inputs of 5 tokens or fewer take the
#: global-attention regime on its local layers, longer ones the sliding window.
CONFIGS = {
    "modernbert": {
        "model_type": "modernbert", "vocab_size": 1024, "hidden_size": 32,
        "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
        "max_position_embeddings": 64, "local_attention": 8, "global_attn_every_n_layers": 2,
        "norm_bias": True, "mlp_bias": True, "attention_bias": True, "pad_token_id": 0,
    },
    "neobert": {
        "model_type": "neobert", "vocab_size": 1024, "hidden_size": 32,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "max_length": 64, "pad_token_id": 0,
    },
}  # fmt: skip
LENGTHS = (5, 12, 40)
BATCH_SIZES = (2, 3)


def randomize(module, seed: int) -> None:
    """Weights far from their initial values, so that every bias and gain matters."""
    rng = np.random.default_rng(seed)
    params = []
    for name, value in tree_flatten(module.parameters()):
        shape = value.shape
        if name.endswith("bias"):
            new = 0.1 * rng.standard_normal(shape)
        elif len(shape) == 1:
            new = 1.0 + 0.2 * rng.standard_normal(shape)
        else:
            new = rng.standard_normal(shape) / np.sqrt(shape[-1])
        params.append((name, mx.array(new.astype(np.float32))))
    module.update(tree_unflatten(params))
    mx.eval(module.parameters())


def tiny_encoder(arch: str, folder: Path) -> Path:
    """A tiny random encoder folder (config, weights, tokenizer) of ``arch``."""
    if arch == "bert":
        return TINY_BERT
    folder.mkdir(parents=True, exist_ok=True)
    config = CONFIGS[arch]
    encoder = get_architecture(arch).build(dict(config), "encoder")
    randomize(encoder, seed=len(arch))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(encoder.parameters())))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for name in TOKENIZER_FILES:
        shutil.copyfile(TINY_BERT / name, folder / name)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["model_input_names"] = ["input_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def padded_batch(batch: int, length: int, inputs, seed: int = 0) -> dict[str, np.ndarray]:
    """Random ids with right padding (row 0 is half padding, row 1 full length)."""
    rng = np.random.default_rng(seed + 31 * length + batch)
    ids = rng.integers(5, 1000, (batch, length)).astype(np.int64)
    mask = np.ones((batch, length), np.int64)
    mask[0, max(1, length // 2) :] = 0
    if batch > 2:
        mask[2, length - 1 :] = 0
    ids[mask == 0] = 0
    types = np.zeros((batch, length), np.int64)
    types[1, length // 2 :] = 1
    full = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: full[name] for name in inputs}


TOL = 1e-4
ARCHS = ("bert", "modernbert", "neobert")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return {arch: tiny_encoder(arch, root / arch) for arch in ARCHS}


def compare(folder: Path, source, *, pooling=None, fmt="onnx", encoder_only=False) -> float:
    """Largest |Δ| between the export in ``folder`` and MLX, over every batch size and
    length of the grid (each checked against TOL)."""
    subject = open_subject(source, encoder_only=encoder_only)
    spec = GraphSpec(pooling=pooling)
    plan = plan_graph(subject, spec, fmt)
    worst = 0.0
    if fmt == "onnx":
        runner = onnx_format.session(folder / "model.onnx")
    else:
        runner = mx.import_function(str(folder / "model.mlxfn"))
    for batch_size in BATCH_SIZES:
        for length in LENGTHS:
            batch = padded_batch(batch_size, length, plan.inputs)
            want = mlx_outputs(subject, plan, spec, batch)
            if fmt == "onnx":
                got = onnx_format.run(runner, batch)
            else:
                got = mlxfn_format.run(runner, batch, plan.inputs)
            assert [g.shape for g in got] == [w.shape for w in want]
            diff = max_difference(got, want)
            assert diff <= TOL, (batch_size, length, diff)
            worst = max(worst, diff)
    return worst


# ------------------------------------------------------------------------------ encoders


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", ["onnx", "mlxfn"])
def test_encoder_export_equals_mlx(encoders, tmp_path, arch, fmt):
    result = export_model(encoders[arch], fmt, tmp_path / "out", pooling="mean")
    assert result.max_abs_diff <= TOL
    compare(tmp_path / "out", encoders[arch], pooling="mean", fmt=fmt)
    assert {"tokenizer.json", "export.json", f"model.{fmt}"} <= set(result.files)


def test_onnx_graph_is_dynamic_and_recent(encoders, tmp_path):
    export_model(encoders["modernbert"], "onnx", tmp_path / "out")
    model = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert model.opset_import[0].version == onnx_format.DEFAULT_OPSET
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input]  # fmt: skip
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert dims == [["batch", "sequence"]] * 2


def test_oldest_opset(encoders, tmp_path):
    result = export_model(encoders["modernbert"], "onnx", tmp_path / "out", opset=17)
    assert result.max_abs_diff <= TOL
    compare(tmp_path / "out", encoders["modernbert"])


def test_real_minilm_onnx_mlxfn_and_int8(tmp_path):
    minilm = get_preset("all-minilm-l6-v2").resolve()
    result = export_model(minilm, "onnx", tmp_path / "onnx", pooling="mean", quantize=True)
    assert compare(tmp_path / "onnx", minilm, pooling="mean") <= TOL
    assert result.quantized_min_cosine > 0.98  # int8 weights move values, not directions
    export_model(minilm, "mlxfn", tmp_path / "fn", pooling="mean")
    assert compare(tmp_path / "fn", minilm, pooling="mean", fmt="mlxfn") <= TOL


def test_float16_export_within_its_tolerance(encoders, tmp_path):
    for fmt in ("onnx", "mlxfn"):
        result = export_model(encoders["bert"], fmt, tmp_path / fmt, dtype="float16")
        assert result.max_abs_diff < 0.05  # float16 weights; TOLERANCE["float16"] scaled


# ------------------------------------------------------------------------------ task models

HEADS = [  # (arch, head type, options)
    ("bert", "multiclass", {"labels": ["neg", "neu", "pos"]}),
    ("modernbert", "multiclass", {"labels": ["neg", "neu", "pos"]}),
    ("neobert", "multiclass", {"labels": ["neg", "neu", "pos"]}),
    ("bert", "binary", {"labels": ["no", "yes"]}),
    ("modernbert", "regression", {}),
    ("neobert", "multilabel", {"labels": ["a", "b", "c"], "pooling": "mean"}),
    ("bert", "ordinal", {"num_labels": 4, "pooling": "attention"}),
    ("modernbert", "binary", {"pooling": "weighted_layer"}),
    ("neobert", "regression", {"pooling": "max", "head_options": {"uncertainty": True}}),
]


def task_folder(encoders, tmp_path, arch, head, options) -> Path:
    model, tokenizer, info = create_task_model(encoders[arch], head, seed=0, **options)
    randomize(model.head, seed=7)
    randomize(model.pooler, seed=8)
    if head == "regression":
        model.head.fit_scaler(np.array([0.0, 1.5, 5.0, 3.2]))
    return save_task_model(model, tokenizer, tmp_path / "model", info=info, max_length=48)


@pytest.mark.parametrize(("arch", "head", "options"), HEADS)
def test_task_model_logits_equal_mlx(encoders, tmp_path, arch, head, options):
    folder = task_folder(encoders, tmp_path, arch, head, options)
    for fmt in ("onnx", "mlxfn"):
        export_model(folder, fmt, tmp_path / fmt)
        compare(tmp_path / fmt, folder, fmt=fmt)
    clf = Classifier.from_pretrained(folder)  # and as Classifier computes them
    logits = clf.logits(["a text", "another, longer text than that"])
    enc = clf.tokenizer(["a text", "another, longer text than that"], max_length=48)
    feeds = {k: np.asarray(v, np.int64) for k, v in enc.items()}
    got = onnx_format.run(tmp_path / "onnx" / "model.onnx", feeds)[0]
    assert np.abs(got.reshape(logits.shape) - logits).max() <= TOL


def test_labels_and_thresholds_in_metadata(encoders, tmp_path):
    folder = task_folder(encoders, tmp_path, "bert", "multilabel", {"labels": ["a", "b"]})
    clf = Classifier.from_pretrained(folder)
    clf.model.head._thresholds = [0.3, 0.7]
    export_model(clf, "onnx", tmp_path / "onnx")
    props = {
        p.key: p.value for p in onnx.load(str(tmp_path / "onnx" / "model.onnx")).metadata_props
    }
    assert json.loads(props["mlxbert.labels"]) == ["a", "b"]
    assert json.loads(props["mlxbert.thresholds"]) == [0.3, 0.7]
    assert json.loads(props["id2label"]) == {"0": "a", "1": "b"}
    assert props["mlxbert.prediction"] == "labels"
    described = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert described["outputs"] == {"logits": ["batch", 2]} and described["kind"] == "classifier"


def test_written_files_keep_the_umask_mode(encoders, tmp_path):
    export_model(encoders["bert"], "onnx", tmp_path / "out")
    expected = 0o666 & ~current_umask()
    for path in (tmp_path / "out").iterdir():
        assert path.stat().st_mode & 0o777 == expected, path
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~current_umask()


# ------------------------------------------------------------------------------ hf


def test_hf_folders(encoders, tmp_path):
    folder = task_folder(encoders, tmp_path, "modernbert", "multiclass", {"labels": ["x", "y"]})
    result = export_model(folder, "hf", tmp_path / "hf")
    assert "model.safetensors" in result.files
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["ModernBertForSequenceClassification"]
    a = Classifier.from_pretrained(folder).logits(["some words"])
    b = Classifier.from_pretrained(tmp_path / "hf").logits(["some words"])
    assert np.abs(a - b).max() <= TOL

    export_model(encoders["neobert"], "hf", tmp_path / "enc")
    ids = padded_batch(2, 12, ["input_ids", "attention_mask"])
    x = from_pretrained(encoders["neobert"])(**{k: mx.array(v) for k, v in ids.items()})
    y = from_pretrained(tmp_path / "enc")(**{k: mx.array(v) for k, v in ids.items()})
    assert float(mx.abs(x.last_hidden_state - y.last_hidden_state).max()) == 0.0


def test_hf_refuses_heads_transformers_lacks(encoders, tmp_path):
    folder = task_folder(encoders, tmp_path, "bert", "multiclass",
                         {"labels": ["x", "y"], "pooling": "mean"})  # fmt: skip
    with pytest.raises(ExportError, match="transformers cannot load it"):
        export_model(folder, "hf", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


# ------------------------------------------------------------------------------ bad input


def test_bad_arguments_fail_before_any_work(encoders, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_model(encoders["bert"], "tflite", out)
    with pytest.raises(ExportError, match="unknown dtype"):
        export_model(encoders["bert"], "onnx", out, dtype="bfloat16")
    with pytest.raises(ExportError, match="opset 9 is not available"):
        export_model(encoders["bert"], "onnx", out, opset=9)
    with pytest.raises(ExportError, match="exceeds the model's 64 positions"):
        export_model(encoders["bert"], "onnx", out, max_length=65)
    with pytest.raises(ExportError, match="cannot open model"):
        export_model(tmp_path / "missing", "onnx", out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is not a folder"):
        export_model(encoders["bert"], "onnx", tmp_path / "file" / "out")
    assert not out.exists()


def test_missing_onnx_extra_gives_the_install_hint(encoders, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'mlxbert-glue\[onnx\]'"):
        export_model(encoders["bert"], "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(encoders, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="already exists"):
        export_model(encoders["bert"], "mlxfn", out)
    assert (out / "mine.txt").read_text() == "keep"
    export_model(encoders["bert"], "mlxfn", out, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "model.mlxfn").is_file()


def test_failed_export_leaves_nothing(encoders, tmp_path, monkeypatch):
    def broken(model, path):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(onnx_format, "save_model", broken)
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(OSError, match="disk full"):
        export_model(encoders["bert"], "onnx", out)
    assert list(tmp_path.iterdir()) == []


def test_architecture_without_graph_writer_is_named(encoders, monkeypatch):
    class CustomEncoder(BertModel):
        pass

    monkeypatch.setattr(writers, "_REGISTRY", {})  # no writer for any class
    encoder = from_pretrained(encoders["bert"])
    encoder.__class__ = CustomEncoder
    with pytest.raises(ExportError, match=r"cannot export CustomEncoder .* no graph writer"):
        plan_graph(ExportSubject(encoder, None, None, "x"), GraphSpec(), "onnx")


def test_heads_without_graph_form_are_refused(encoders, tmp_path):
    model, tokenizer, info = create_task_model(
        encoders["bert"], "timeseries", head_options={"horizon": 2}
    )
    folder = save_task_model(model, tokenizer, tmp_path / "ts", info=info)
    with pytest.raises(ExportError, match="extra inputs"):
        export_model(folder, "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()
