"""Turn a local folder or a Hugging Face repo id into a local folder of model files."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

CONFIG_PATTERNS = ("config.json", "mlxbert.json", "modules.json", "sentence_bert_config.json")
TOKENIZER_PATTERNS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "1_Pooling/config.json",
)
SAFETENSORS_PATTERNS = ("model.safetensors", "model.safetensors.index.json", "model-*.safetensors")
TORCH_PATTERNS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin")

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub itself reads it only once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith((".", "-"))


def resolve_folder(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
    patterns: Sequence[Sequence[str]] = (CONFIG_PATTERNS + TOKENIZER_PATTERNS,),
    done: Callable[[Path], bool] | None = None,
    what: str = "model",
) -> Path:
    """A local folder holding the files of ``name_or_path``.

    An existing path is used as is. Otherwise ``name_or_path`` is a Hugging Face repo id and is
    fetched with ``huggingface_hub.snapshot_download`` (its cache, ``revision``, ``cache_dir``;
    offline when ``local_files_only`` or ``HF_HUB_OFFLINE`` is set). ``patterns`` are tried in
    order, each download adding files, until ``done(folder)`` is true; this fetches safetensors
    weights and falls back to ``pytorch_model.bin`` only when a repo has no safetensors.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{path} is a file; give the {what} folder that holds it")
        return path
    name = str(name_or_path)
    if not looks_like_repo_id(name):
        raise FileNotFoundError(f"{what} folder not found: {path}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise FileNotFoundError(
            f"{name!r} is not a local folder, and huggingface_hub is not installed to fetch it"
        ) from exc
    offline = local_files_only or hub_offline()
    folder: Path | None = None
    for allow in patterns:
        try:
            folder = Path(
                snapshot_download(
                    repo_id=name,
                    revision=revision,
                    cache_dir=str(cache_dir) if cache_dir is not None else None,
                    local_files_only=offline,
                    allow_patterns=list(allow),
                )
            )
        except Exception as exc:  # hub errors have many types (offline, 404, gated, network)
            where = "in the local Hugging Face cache" if offline else "on the Hugging Face Hub"
            if offline and not local_files_only:
                where += " (HF_HUB_OFFLINE is set)"
            raise FileNotFoundError(
                f"could not find {what} {name!r}: it is not a local folder and could not be "
                f"fetched {where} ({type(exc).__name__}: {exc}). Check the name or path"
                + (", or download it once while online." if offline else ".")
            ) from exc
        if done is None or done(folder):
            break
    assert folder is not None
    return folder
