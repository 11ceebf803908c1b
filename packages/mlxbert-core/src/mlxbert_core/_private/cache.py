"""Where mlxbert keeps files it derives (converted checkpoints, runtime helpers)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$MLXBERT_CACHE`` if set, else ``$XDG_CACHE_HOME/mlxbert`` or ``~/.cache/mlxbert``."""
    env = os.environ.get("MLXBERT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mlxbert"
