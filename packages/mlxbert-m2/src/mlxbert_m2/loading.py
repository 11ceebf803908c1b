"""Building M2-BERT models and loading checkpoints into them strictly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlxbert_core.dtypes import parse_dtype
from mlxbert_core.registry import TASKS
from mlxbert_core.weights import WeightMismatchError
from mlxbert_core.weights import load_weights_strict as core_load_weights_strict

from .checkpoints import find_checkpoint, read_checkpoint, sanitize
from .config import M2BertConfig
from .model import M2BertForMaskedLM, M2BertForSequenceClassification, M2BertModel

logger = logging.getLogger("mlxbert_m2")

#: What the architecture's reference config says when a checkpoint does not fit it.
_CONFIG_HINT = (
    "Check that config.json belongs to this checkpoint (hidden_size, long_conv_l_max, "
    "bidirectional, residual_long_conv, use_monarch_mlp, hyena_training_additions, "
    "use_positional_encodings)."
)


def build_model(
    config: M2BertConfig | dict[str, Any],
    task: str = "encoder",
    *,
    num_labels: int | None = None,
    add_pooling_layer: bool = True,
) -> nn.Module:
    """A randomly initialised M2-BERT for ``task`` (``encoder``, ``masked_lm``,
    ``sequence_classification``)."""
    if isinstance(config, dict):
        config = M2BertConfig.from_dict(config)
    if task == "encoder":
        return M2BertModel(config, add_pooling_layer=add_pooling_layer)
    if task == "masked_lm":
        return M2BertForMaskedLM(config)
    if task == "sequence_classification":
        return M2BertForSequenceClassification(config, num_labels=num_labels)
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def expand_positions(
    weights: dict[str, mx.array], config: M2BertConfig
) -> tuple[dict[str, mx.array], set[str], list[str]]:
    """Position-embedding expansion of the reference ``from_composer`` loaders.

    Applies only when ``config.expand_positional_embeddings`` is true and the checkpoint is
    shorter than the model. Position embeddings (P, H) become P'/P stacked copies (row r = old
    row r mod P); each filter's ``z`` (1, Lz, E) becomes zeros of (1, 16*Lz, E) with rows
    [Lz, 4*Lz) holding three copies of the old z; ``position_ids`` and every ``pos_emb.t`` are
    dropped so the model keeps its own. Returns the weights, the names whose model values are
    kept, and notes.
    """
    keep: set[str] = set()
    notes: list[str] = []
    if not config.expand_positional_embeddings:
        return weights, keep, notes
    out = dict(weights)
    for key, value in weights.items():
        if key.endswith("embeddings.position_embeddings.weight"):
            p_old, p_new = value.shape[0], config.max_position_embeddings
            if p_old == p_new:
                continue
            if p_new % p_old:
                raise ValueError(
                    f"cannot expand {p_old} position embeddings to {p_new}: the reference "
                    "expansion stacks whole copies, so the new length must be a multiple"
                )
            out[key] = mx.concatenate([value] * (p_new // p_old), axis=0)
            notes.append(f"expanded {key} from {p_old} to {p_new} rows ({p_new // p_old} copies)")
        elif key.endswith("pos_emb.z"):
            lz, l_new = value.shape[1], config.long_conv_l_max
            if lz == l_new:
                continue
            if 16 * lz != l_new:
                raise ValueError(
                    f"cannot expand {key} of length {lz} to long_conv_l_max={l_new}: the "
                    f"reference expansion produces 16 x {lz} = {16 * lz} positions"
                )
            z = mx.zeros((1, l_new, value.shape[2]), dtype=value.dtype)
            z[:, lz : 4 * lz] = mx.concatenate([value] * 3, axis=1)
            out[key] = z
            keep.add(key[: -len("z")] + "t")
    for key in list(out):
        if key.endswith("embeddings.position_ids") or key in keep:
            out.pop(key)
            keep.add(key)
    if keep:
        notes.append(
            f"expanded the filters' z to long_conv_l_max={config.long_conv_l_max}; kept the "
            "model's own position_ids and t buffers"
        )
    return out, keep, notes


def load_weights_strict(
    model: nn.Module,
    weights: dict[str, mx.array],
    *,
    dtype: mx.Dtype = mx.float32,
    allow_missing: set[str] | frozenset[str] = frozenset(),
    source: str = "checkpoint",
) -> None:
    """Load ``weights`` into ``model`` by name, listing every problem at once (mlxbert-core's
    strict check, with a hint about the config).

    The model's floating parameters end up in ``dtype`` (bf16 files upcast exactly); integer
    buffers keep their values. Names in ``allow_missing`` keep the model's values.
    """
    core_load_weights_strict(
        model,
        weights,
        source=source,
        allow_missing=allow_missing,
        dtype=dtype,
        hint=_CONFIG_HINT,
    )
    mx.eval(model.parameters())


def _head_key(key: str) -> str:
    for prefix in ("module.", "model."):
        key = key[len(prefix) :] if key.startswith(prefix) else key
    return key


def _infer_task(weights: dict[str, mx.array], num_labels: int | None, task: str | None) -> str:
    if task is not None:
        return task
    if num_labels is not None or _num_classifier_labels(weights) is not None:
        return "sequence_classification"
    return "encoder"


def _num_classifier_labels(weights: dict[str, mx.array]) -> int | None:
    for k, v in weights.items():
        if _head_key(k) == "classifier.weight":
            return int(v.shape[0])
    return None


def load_checkpoint_into(
    config: M2BertConfig | dict[str, Any],
    checkpoint: str | Path,
    *,
    task: str | None = None,
    num_labels: int | None = None,
    dtype: Any = None,
) -> nn.Module:
    """Build a model for ``config`` and load ``checkpoint`` (any supported format) strictly.

    ``task`` None picks: a classifier model when the file has ``classifier.*`` weights or
    ``num_labels`` is given (a fresh head when the file has none, or one of another size),
    otherwise the bare encoder. ``task="sequence_classification"`` on a file without a
    classifier needs ``num_labels`` (a :class:`WeightMismatchError` otherwise). The model is returned in eval mode, in ``dtype`` (float32 by
    default, whatever the file's dtype).
    """
    if isinstance(config, dict):
        config = M2BertConfig.from_dict(config)
    checkpoint = Path(checkpoint)
    dtype = parse_dtype(dtype) or mx.float32
    raw, notes = read_checkpoint(checkpoint)
    task = _infer_task(raw, num_labels, task)
    file_labels = _num_classifier_labels(raw)
    has_pooler = any(".pooler.dense." in k or k.startswith("pooler.") for k in raw)
    allow_missing: set[str] = set()

    if task == "sequence_classification":
        if file_labels is None and num_labels is None:
            # As core's loader: a classifier asked for without a size must come from the file.
            raise WeightMismatchError(
                f"{checkpoint} has no classifier weights (an encoder-only checkpoint): pass "
                "num_labels=... to start a fresh head",
                missing=["classifier.weight", "classifier.bias"],
            )
        n = num_labels if num_labels is not None else file_labels or config.num_labels
        model = build_model(config, task, num_labels=n)
        if file_labels is None:
            notes.append(f"{checkpoint.name} has no classifier: initialised a fresh {n}-label head")
            allow_missing |= {"classifier.weight", "classifier.bias"}
        elif file_labels != n:
            notes.append(
                f"{checkpoint.name} has a {file_labels}-label classifier; replaced it by a "
                f"fresh {n}-label head"
            )
            raw = {k: v for k, v in raw.items() if not _head_key(k).startswith("classifier.")}
            allow_missing |= {"classifier.weight", "classifier.bias"}
        if not has_pooler:
            notes.append(f"{checkpoint.name} has no pooler: initialised a fresh one")
            allow_missing |= {"bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    elif task == "encoder":
        model = build_model(config, task, add_pooling_layer=has_pooler)
        if not has_pooler:
            notes.append(f"{checkpoint.name} has no pooler: the encoder returns no pooler_output")
    else:
        model = build_model(config, task)

    weights, sanitize_notes = sanitize(raw, model)
    weights, kept, expand_notes = expand_positions(weights, config)
    allow_missing |= kept
    load_weights_strict(
        model, weights, dtype=dtype, allow_missing=allow_missing, source=str(checkpoint)
    )
    notes += sanitize_notes + expand_notes
    for note in notes:
        logger.info("%s", note)
    object.__setattr__(model, "load_notes", notes)
    model.eval()
    return model


def load_folder(
    folder: str | Path,
    config: dict[str, Any] | None = None,
    *,
    checkpoint: str | Path | None = None,
    task: str | None = None,
    num_labels: int | None = None,
    dtype: Any = None,
) -> nn.Module:
    """Load a model folder (``config.json`` + weights) or an explicit checkpoint file."""
    folder = Path(folder)
    if config is None:
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(
                f"{folder}: no config.json; M2-BERT checkpoints need the reference config "
                "(or load a registry name such as 'm2-bert-80M', which supplies one)"
            )
        config = M2BertConfig.from_file(cfg_path).to_dict()
    if checkpoint is None:
        checkpoint = find_checkpoint(folder)
    elif not Path(checkpoint).is_absolute() and not Path(checkpoint).exists():
        checkpoint = folder / checkpoint
    return load_checkpoint_into(config, checkpoint, task=task, num_labels=num_labels, dtype=dtype)
