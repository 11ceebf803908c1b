"""The Encoder protocol: core's three encoders implement it, task models hold one, and
gradient checkpointing and embed rely on it alone."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest

import mlxbert_core as mb
from mlxbert_core import Encoder, find_encoder
from mlxbert_core.models import bert, modernbert, neobert
from mlxbert_core.training import enable_gradient_checkpointing, find_layers

FIXTURES = Path(__file__).parent / "fixtures"
MEMBERS = (
    "hidden_size",
    "max_positions",
    "layers",
    "config_dict",
    "name_or_path",
    "architecture",
    "input_length",
)
#: (architecture module, fixture folder, the config key that holds the position limit)
ARCHITECTURES = [
    (bert, "bert", "max_position_embeddings"),
    (modernbert, "modernbert", "max_position_embeddings"),
    (neobert, "neobert", "max_length"),
]
IDS = mx.array([[1, 5, 7, 9, 2], [3, 4, 8, 2, 0]])


def _config(folder: str) -> dict:
    return json.loads((FIXTURES / folder / "config.json").read_text())


@pytest.mark.parametrize(("module", "folder", "limit_key"), ARCHITECTURES)
def test_encoders_implement_the_protocol(module, folder, limit_key):
    config = _config(folder)
    model = module.build(config, "encoder")
    assert isinstance(model, Encoder)
    # Also visible to a static lookup (what isinstance uses for protocols from Python 3.12).
    for name in (*MEMBERS, "__call__"):
        inspect.getattr_static(model, name)
    assert model.architecture == module.ARCHITECTURE.name
    assert model.hidden_size == config["hidden_size"]
    assert model.max_positions == config[limit_key]
    assert len(model.layers) == config["num_hidden_layers"]
    assert all(isinstance(layer, nn.Module) for layer in model.layers)
    assert model.config_dict == config  # the config it was built from
    assert model.name_or_path == ""
    assert model.input_length is None  # batches pad to their longest input
    out = model(IDS, mx.ones(IDS.shape, dtype=mx.int32), output_hidden_states=True)
    assert out.last_hidden_state.shape == (*IDS.shape, model.hidden_size)


@pytest.mark.parametrize(("module", "folder", "limit_key"), ARCHITECTURES)
def test_task_models_are_not_encoders_but_hold_one(module, folder, limit_key):
    model = module.build(_config(folder), "sequence_classification")
    assert not isinstance(model, Encoder)
    encoder = find_encoder(model)
    assert isinstance(encoder, Encoder) and encoder is not model
    assert find_layers(model) == list(encoder.layers)


def test_encoders_built_directly_describe_their_config():
    args = bert.BertModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    model = bert.BertModel(args)
    assert model.config_dict["model_type"] == "bert"
    assert model.config_dict["hidden_size"] == 32
    assert model.max_positions == args.max_position_embeddings
    # The bookkeeping attributes never enter the parameter tree.
    model.config_dict = {"model_type": "bert", "hidden_size": 32}
    model.name_or_path = "somewhere"
    assert model.config_dict == {"model_type": "bert", "hidden_size": 32}
    assert model.name_or_path == "somewhere"
    assert "config_dict" not in model and "name_or_path" not in model
    assert not any(k.startswith(("config_dict", "name_or_path")) for k in model.parameters())


def test_from_pretrained_describes_the_encoder_of_a_task_model(fixtures_dir):
    folder = fixtures_dir / "bert" / "seqcls3"
    model = mb.from_pretrained(folder, task="sequence_classification")
    encoder = find_encoder(model)
    assert encoder is model.bert
    assert encoder.name_or_path == str(folder) == model.name_or_path
    assert encoder.config_dict == model.config_dict
    plain = mb.from_pretrained(fixtures_dir / "bert")
    assert find_encoder(plain) is plain and plain.name_or_path == str(fixtures_dir / "bert")


class TaskModel(nn.Module):
    """A task model as mlxbert-glue builds one: an encoder and a head, side by side."""

    def __init__(self, encoder: nn.Module, labels: int = 3):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.hidden_size, labels))
        # A head with a list of its own must not be mistaken for the layer stack.
        self.head_layers = [nn.Linear(labels, labels)]

    def __call__(self, input_ids, attention_mask=None):
        hidden = self.encoder(input_ids, attention_mask).last_hidden_state
        return self.head(hidden[:, 0])


@pytest.mark.parametrize(("module", "folder", "limit_key"), ARCHITECTURES)
def test_find_layers_on_a_task_model_wrapper(module, folder, limit_key):
    encoder = module.build(_config(folder), "encoder")
    wrapped = TaskModel(encoder)
    assert find_layers(wrapped) == list(encoder.layers)
    assert enable_gradient_checkpointing(wrapped) == len(encoder.layers)
    assert all(type(layer).__name__.startswith("Checkpointed") for layer in encoder.layers)
    mask = mx.ones(IDS.shape, dtype=mx.int32)
    grads = nn.value_and_grad(wrapped, lambda m: m(IDS, mask).sum())(wrapped)[1]
    assert grads["encoder"]


def test_find_layers_without_an_encoder_explains():
    holder = nn.Module()
    holder.block = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"not an mlxbert_core\.Encoder"):
        find_layers(holder)
    assert find_encoder(nn.Linear(2, 2)) is None
    assert find_encoder("not a module") is None


def test_embed_asks_the_encoder_for_its_limits(fixtures_dir):
    model = mb.from_pretrained(fixtures_dir / "bert")
    tok = mb.load_tokenizer(fixtures_dir / "bert")
    long_text = " ".join(["word"] * (model.max_positions + 40))
    vectors = mb.embed(model, tok, [long_text, "short"])
    assert vectors.shape == (2, model.hidden_size)
    assert mb.embed(model, tok, []).shape == (0, model.hidden_size)
