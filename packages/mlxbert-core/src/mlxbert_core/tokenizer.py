"""Tokenization over the ``tokenizers`` library, with transformers-style call semantics.

A ``tokenizer.json`` may carry padding and truncation settings of its own (MiniLM's pads and
truncates everything to 128). Those are switched off when loading; every call decides its own
truncation and padding, as transformers' tokenizers do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as _Backend

from mlxbert_core._private.hub import CONFIG_PATTERNS, TOKENIZER_PATTERNS, resolve_folder
from mlxbert_core.presets import resolve_model_source

__all__ = ["Tokenizer", "load_tokenizer"]

_DEFAULT_INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
_SPECIAL = ("pad", "unk", "cls", "sep", "mask", "bos", "eos")
# transformers writes a huge sentinel (1e30) for "no limit"; such values are not a real limit.
_SANE_MAX_LENGTH = 1_000_000
_TRUNCATION = {True: "longest_first", "longest_first": "longest_first",
               "only_first": "only_first", "only_second": "only_second"}  # fmt: skip


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class Tokenizer:
    """A fast tokenizer whose call returns model inputs as NumPy or MLX arrays.

    Attributes: ``model_max_length`` (None when the folder sets no real limit),
    ``model_input_names``, ``vocab_size``, ``pad_token_id``, ``cls_token_id``,
    ``sep_token_id``, ``mask_token_id``, ``unk_token_id`` (None where the tokenizer has none).
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        config: dict[str, Any] | None = None,
        special_tokens: dict[str, Any] | None = None,
        name_or_path: str | None = None,
        embedding_max_length: int | None = None,
    ):
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self._config = dict(config or {})
        self.name_or_path = name_or_path
        limit = self._config.get("model_max_length")
        self.model_max_length: int | None = (
            int(limit) if isinstance(limit, (int, float)) and 0 < limit < _SANE_MAX_LENGTH else None
        )
        names = self._config.get("model_input_names") or _DEFAULT_INPUT_NAMES
        self.model_input_names: tuple[str, ...] = tuple(names)
        #: sentence-transformers' ``max_seq_length`` when the folder has one (used by embed).
        self.embedding_max_length = embedding_max_length
        merged = {
            **(special_tokens or {}),
            **{k: v for k, v in self._config.items() if k.endswith("_token")},
        }
        self.special_tokens: dict[str, str] = {}
        for kind in _SPECIAL:
            text = _token_text(merged.get(f"{kind}_token"))
            if text is not None and backend.token_to_id(text) is not None:
                self.special_tokens[kind] = text
        for kind in _SPECIAL:
            setattr(self, f"{kind}_token_id", self.token_to_id(self.special_tokens.get(kind)))

    # -- loading / saving -------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | Path) -> Tokenizer:
        folder = Path(folder)
        config = _read_json(folder / "tokenizer_config.json")
        special = _read_json(folder / "special_tokens_map.json")
        st_max = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
        if (folder / "tokenizer.json").is_file():
            backend = _Backend.from_file(str(folder / "tokenizer.json"))
        elif (folder / "vocab.txt").is_file():
            from tokenizers.implementations import BertWordPieceTokenizer

            lower = bool(config.get("do_lower_case", True))
            strip = config.get("strip_accents")
            backend = BertWordPieceTokenizer(
                str(folder / "vocab.txt"),
                lowercase=lower,
                strip_accents=lower if strip is None else bool(strip),
                handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
            )._tokenizer
        else:
            raise FileNotFoundError(
                f"no tokenizer in {folder}: looked for tokenizer.json and vocab.txt"
            )
        return cls(
            backend,
            config=config,
            special_tokens=special,
            name_or_path=str(folder),
            embedding_max_length=int(st_max) if isinstance(st_max, int) and st_max > 0 else None,
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``tokenizer.json`` (no baked-in padding/truncation) and ``tokenizer_config.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._backend.save(str(folder / "tokenizer.json"))
        config = dict(self._config)
        config.setdefault("model_input_names", list(self.model_input_names))
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        for kind, text in self.special_tokens.items():
            config.setdefault(f"{kind}_token", text)
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        return folder

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def backend(self) -> _Backend:
        """The underlying ``tokenizers.Tokenizer`` (padding and truncation off)."""
        return self._backend

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def token_to_id(self, token: str | None) -> int | None:
        return None if token is None else self._backend.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._backend.id_to_token(int(index))

    @property
    def all_special_ids(self) -> list[int]:
        return sorted({self.token_to_id(t) for t in self.special_tokens.values()} - {None})

    # -- encoding -------------------------------------------------------------------------------

    def tokenize(self, text: str, text_pair: str | None = None) -> list[str]:
        """Tokens without special tokens."""
        return self._backend.encode(text, text_pair, add_special_tokens=False).tokens

    def encode(
        self, text: str, text_pair: str | None = None, *, add_special_tokens: bool = True
    ) -> list[int]:
        """Token ids of one text (or pair), untruncated and unpadded."""
        return self._backend.encode(text, text_pair, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int] | np.ndarray, *, skip_special_tokens: bool = True) -> str:
        return self._backend.decode(
            [int(i) for i in np.asarray(ids).reshape(-1)], skip_special_tokens=skip_special_tokens
        )

    def batch_decode(
        self, batch: Sequence[Sequence[int]] | np.ndarray, *, skip_special_tokens: bool = True
    ) -> list[str]:
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in batch]

    def _encode_batch(self, texts, text_pairs, max_length, truncation, add_special_tokens):
        if text_pairs is None:
            inputs: list[Any] = list(texts)
        else:
            if len(text_pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
            inputs = [t if p is None else (t, p) for t, p in zip(texts, text_pairs)]
        if truncation is not False and max_length is not None:
            strategy = _TRUNCATION.get(truncation)
            if strategy is None:
                raise ValueError(
                    f"truncation={truncation!r}; use True, False, 'longest_first', 'only_first' or 'only_second'"
                )
            self._backend.enable_truncation(int(max_length), strategy=strategy)
        try:
            return self._backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
        except Exception as exc:  # tokenizers raises a plain Exception on truncation errors
            raise ValueError(f"tokenization failed: {exc}") from exc
        finally:
            self._backend.no_truncation()

    def __call__(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str | None] | None = None,
        *,
        max_length: int | None = None,
        truncation: bool | str = True,
        padding: bool | str = "longest",
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = "np",
        add_special_tokens: bool = True,
    ) -> dict[str, Any]:
        """Tokenize a batch; returns ``input_ids``, ``attention_mask`` and ``token_type_ids``.

        ``token_type_ids`` is left out when the tokenizer's ``model_input_names`` lacks it
        (ModernBERT, NeoBERT). A single string is a batch of one.

        max_length:  truncation limit and ``padding="max_length"`` width; default
                     ``model_max_length`` from tokenizer_config.json (if it sets a real one).
        truncation:  True / "longest_first", "only_first", "only_second", or False.
        padding:     "longest" (or True), "max_length", or False ("do_not_pad").
        return_tensors: "np" (int64), "mx" (int32 ``mx.array``), or None (lists).
        """
        if isinstance(texts, str):
            texts = [texts]
            if isinstance(text_pairs, str):
                text_pairs = [text_pairs]
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        if isinstance(text_pairs, str):
            raise TypeError("text_pairs must be a list when texts is a list")
        if max_length is None:
            max_length = self.model_max_length
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        if padding is True:
            padding = "longest"
        if padding in ("do_not_pad", None):
            padding = False
        if padding not in ("longest", "max_length", False):
            raise ValueError(f"padding={padding!r}; use 'longest', 'max_length' or False")
        if return_tensors not in ("np", "mx", None):
            raise ValueError(f"return_tensors={return_tensors!r}; use 'np', 'mx' or None")

        encodings = self._encode_batch(
            texts, text_pairs, max_length, truncation, add_special_tokens
        )
        ids = [e.ids for e in encodings]
        types = [e.type_ids for e in encodings]
        if padding is False and return_tensors is None:
            out = {
                "input_ids": [list(r) for r in ids],
                "attention_mask": [[1] * len(r) for r in ids],
                "token_type_ids": [list(t) for t in types],
            }
            return self._select(out)
        if padding is False:
            width = None
        else:
            width = max((len(row) for row in ids), default=0)
            if padding == "max_length":
                if max_length is None:
                    raise ValueError(
                        "padding='max_length' needs max_length (the tokenizer sets none)"
                    )
                width = max(width, int(max_length))
            if pad_to_multiple_of:
                width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        if width is None:
            if return_tensors is not None and len({len(r) for r in ids}) > 1:
                raise ValueError("rows differ in length: use padding='longest' to return arrays")
            width = len(ids[0]) if ids else 0
        return self.pad(ids, types, width=width, return_tensors=return_tensors)

    def _select(self, out: dict[str, Any]) -> dict[str, Any]:
        keep = ["input_ids", "attention_mask"]
        if "token_type_ids" in self.model_input_names:
            keep.append("token_type_ids")
        return {name: out[name] for name in keep}

    def pad(
        self,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int]] | None = None,
        *,
        width: int | None = None,
        return_tensors: str | None = "np",
    ) -> dict[str, Any]:
        """Right-pad rows of token ids (and type ids) to ``width`` (default: the longest)."""
        if types is None:
            types = [[0] * len(r) for r in ids]
        if width is None:
            width = max((len(r) for r in ids), default=0)
        needs_pad = any(len(r) < width for r in ids)
        if needs_pad and self.pad_token_id is None:
            raise ValueError("this tokenizer has no pad token; use padding=False")
        pad = self.pad_token_id or 0
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        attention = np.zeros((len(ids), width), dtype=np.int64)
        token_types = np.zeros((len(ids), width), dtype=np.int64)
        for row, (seq, typ) in enumerate(zip(ids, types)):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
            token_types[row, : len(typ)] = typ
        arrays = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "token_type_ids": token_types,
        }
        if return_tensors == "mx":
            import mlx.core as mx

            return self._select({k: mx.array(v.astype(np.int32)) for k, v in arrays.items()})
        if return_tensors is None:
            return self._select({k: v.tolist() for k, v in arrays.items()})
        return self._select(arrays)

    def __repr__(self) -> str:
        return (
            f"Tokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length})"
        )


def load_tokenizer(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Tokenizer:
    """Load the tokenizer of a local folder or a Hugging Face repo id.

    Reads ``tokenizer.json`` (or builds a WordPiece tokenizer from ``vocab.txt``),
    ``tokenizer_config.json`` (model_max_length, model_input_names, special tokens) and
    ``special_tokens_map.json``. A preset name (``mlxbert_core.MODELS``) means its files, or
    the tokenizer its ``settings["tokenizer"]`` names (checkpoints shipped without one).
    """
    source, preset = resolve_model_source(name_or_path)
    if preset is not None and preset.settings.get("tokenizer"):
        source = preset.settings["tokenizer"]
    folder = resolve_folder(
        source,
        revision=revision,
        local_files_only=local_files_only,
        cache_dir=cache_dir,
        patterns=(TOKENIZER_PATTERNS + CONFIG_PATTERNS,),
        what="tokenizer",
    )
    return Tokenizer.from_folder(folder)
