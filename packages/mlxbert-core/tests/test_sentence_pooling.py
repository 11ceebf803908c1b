"""The pooling a sentence-transformers checkpoint names in its Pooling module's config."""

import json

import pytest

import mlxbert_core as mb


def _folder(tmp_path, modes, path="1_Pooling"):
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": path,
                    "type": "sentence_transformers.models.Pooling",
                },
            ]
        )
    )
    (tmp_path / path).mkdir()
    (tmp_path / path / "config.json").write_text(json.dumps(modes))
    return tmp_path


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}, "mean"),
        ({"pooling_mode_cls_token": True}, "cls"),
        ({"pooling_mode_max_tokens": True}, "max"),
        ({"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}, None),  # mixed
        ({"pooling_mode_mean_sqrt_len_tokens": True}, None),  # not one of ours
    ],
)
def test_pooling_modes(tmp_path, modes, expected):
    assert mb.checkpoint_pooling(_folder(tmp_path, modes)) == expected


def test_plain_folders_and_the_real_minilm(tmp_path):
    assert mb.checkpoint_pooling(tmp_path) is None
    (tmp_path / "modules.json").write_text("not json")
    assert mb.checkpoint_pooling(tmp_path) is None
    assert mb.checkpoint_pooling(mb.get_preset("all-minilm-l6-v2").resolve()) == "mean"
