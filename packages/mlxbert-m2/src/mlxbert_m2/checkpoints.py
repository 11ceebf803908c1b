"""Reading M2-BERT checkpoint files and mapping their keys onto the MLX modules (torch-free).

Formats (see the package README):

* Composer ``.pt``: ``ckpt["state"]["model"]`` with ``model.``-prefixed state-dict keys.
* ``pytorch_model.bin`` / ``model.bin``: a flat ``bert.*`` state dict (the retrieval repos).
* ``model.safetensors``: ``safetensors.torch.save_model`` output, whose header metadata maps each
  dropped alias of the shared ``Sin.freq`` tensor to the name that was kept.

Pickled files are read with mlxbert-core's restricted unpickler (no torch needed).
"""

from __future__ import annotations

import re
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlxbert_core.checkpoints import load_weights

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.bin")

# FlashFFTConv keeps precomputed twiddle factors as module buffers; some revisions of the
# released retrieval checkpoints still carry them. They are not weights (the FFT here needs
# none), so they are dropped by name.
_FLASH_FFT_KEY = re.compile(r"(^|\.)(flashfftconv|flash_fft_conv|flashfft|fftconv_fn)(\.|$)")
_FREQ_ALIAS = re.compile(r"^(.*\.filter_fn2?)\.implicit_filter(_rev)?\.(\d+)\.freq$")
_KEPT_FREQ = "implicit_filter.1.freq"


def find_checkpoint(folder: Path) -> Path:
    """The weight file of a model folder: safetensors, then ``.bin``, then a single ``.pt``."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    pts = sorted(folder.glob("*.pt"))
    if len(pts) == 1:
        return pts[0]
    if len(pts) > 1:
        raise FileNotFoundError(
            f"{folder}: several Composer checkpoints ({', '.join(p.name for p in pts)}); pass "
            "the one to load as checkpoint=..."
        )
    raise FileNotFoundError(
        f"{folder}: no M2-BERT weights found (looked for {', '.join(WEIGHT_FILES)} and *.pt)"
    )


def _read_safetensors(path: Path) -> tuple[dict[str, mx.array], list[str]]:
    weights, metadata = mx.load(str(path), return_metadata=True)
    notes = []
    aliases = {k: v for k, v in (metadata or {}).items() if k != "format" and v in weights}
    for dropped, kept in aliases.items():
        weights[dropped] = weights[kept]
    if aliases:
        notes.append(
            f"{path.name}: restored {len(aliases)} shared-tensor aliases from the header metadata"
        )
    return weights, notes


def read_checkpoint(path: str | Path) -> tuple[dict[str, mx.array], list[str]]:
    """Read a checkpoint file into ``{state-dict name: mx.array}`` (dtypes as stored) + notes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    # Composer .pt and pytorch_model.bin: core's restricted unpickler (no torch), which also
    # unwraps ["state"]["model"] and caches the conversion as safetensors.
    return load_weights(path), []


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def sanitize(
    weights: dict[str, mx.array], model: nn.Module
) -> tuple[dict[str, mx.array], list[str]]:
    """Map checkpoint keys onto ``model``'s parameter names.

    Strips ``module.`` / ``model.`` wrappers, adds or removes the ``bert.`` prefix to match the
    model, folds the shared ``freq`` aliases and the tied MLM decoder weight into the one
    tensor the model holds (after checking they really are equal), and drops FlashFFTConv
    buffers and, for a bare encoder, task heads. Every drop is explained in the notes;
    anything else is left for the strict check to report.
    """
    notes: list[str] = []
    has_bert = "bert" in model
    head_prefixes = ("classifier.", "cls.")
    out: dict[str, mx.array] = {}
    for key, value in weights.items():
        key = _strip(_strip(key, "module."), "model.")
        if has_bert and not key.startswith(("bert.", *head_prefixes)):
            key = "bert." + key
        if not has_bert:
            key = _strip(key, "bert.")
        out[key] = value

    flash = sorted(k for k in out if _FLASH_FFT_KEY.search(k))
    if flash:
        for k in flash:
            del out[k]
        notes.append(f"ignored {len(flash)} FlashFFTConv buffers (not weights), e.g. {flash[0]}")

    if not has_bert:
        heads = sorted(k for k in out if k.startswith(head_prefixes))
        for k in heads:
            del out[k]
        if heads:
            notes.append(
                f"ignored {len(heads)} task-head weights for a bare encoder: "
                + ", ".join(heads[:4])
                + (" ..." if len(heads) > 4 else "")
            )

    aliases = 0
    mismatched = []
    for key in sorted(out):
        m = _FREQ_ALIAS.match(key)
        if not m or (m.group(2) is None and m.group(3) == "1"):
            continue
        kept = f"{m.group(1)}.{_KEPT_FREQ}"
        if kept not in out:
            out[kept] = out[key]  # a file that kept another alias name
        elif out[key].shape != out[kept].shape or not mx.array_equal(out[key], out[kept]):
            mismatched.append(key)
            continue
        del out[key]
        aliases += 1
    if mismatched:
        raise ValueError(
            "these Sin frequency tensors differ from their filter's implicit_filter.1.freq, "
            "but M2-BERT shares one tensor per filter: " + ", ".join(mismatched)
        )
    if aliases:
        notes.append(f"folded {aliases} aliases of the shared Sin frequency tensors")

    tied = "cls.predictions.decoder.weight"
    if tied in out:
        word = out.get("bert.embeddings.word_embeddings.weight")
        if word is not None and not (
            word.shape == out[tied].shape and mx.array_equal(word, out[tied])
        ):
            raise ValueError(
                f"{tied} differs from the word embeddings; M2-BERT ties them, so this "
                "checkpoint cannot be represented"
            )
        del out[tied]
        notes.append(f"{tied} is tied to the word embeddings")
    return out, notes
