"""``mlxbert_glue.serve``: an HTTP server for classifiers and embedders (the ``serve``
extra: ``pip install "mlxbert-glue[serve]"``).

    >>> from mlxbert_glue.serve import ServeSettings, run
    >>> run(["sst2=runs/sst2", "all-minilm-l6-v2"], ServeSettings(port=8080))

Routes: ``POST /predict``, ``/embed``, ``/v1/embeddings`` (OpenAI), ``/tokenize``;
``GET /health``, ``/info``, ``/metrics`` (Prometheus), ``/docs`` (OpenAPI). Requests are
tokenized on arrival and queued; one model worker thread runs MLX on batches of similar
lengths within a token budget (see :mod:`.batcher`); answers are cached (LRU) by model and
exact input.

This module imports without the extra; :func:`run` imports the web stack
(FastAPI, uvicorn, prometheus-client, orjson) when called and raise
:class:`ServeUnavailableError` with the install hint when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import (
    INSTALL_HINT,
    RequestError,
    ServeConfigError,
    ServeUnavailableError,
)
from .settings import DTYPES, POOLINGS, ModelSpec, ServeSettings, parse_model_specs

#: the distributions of the serve extra, by the module name they install
_WEB_STACK = {"fastapi", "starlette", "pydantic", "uvicorn", "prometheus_client", "orjson"}


def _server() -> Any:
    try:
        from . import server
    except ImportError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in _WEB_STACK:
            raise
        raise ServeUnavailableError(
            f"serving needs the serve extra ({top} is not installed): {INSTALL_HINT}"
        ) from None
    return server


def available() -> bool:
    """Whether the serve extra's web stack is installed."""
    try:
        _server()
    except ServeUnavailableError:
        return False
    return True


def run(
    models: Sequence[str | ModelSpec],
    settings: ServeSettings | None = None,
    *,
    announce: Callable[[str], None] | None = None,
) -> int | None:
    """Serve ``models`` (``PATH_OR_NAME`` or ``NAME=PATH_OR_NAME``; the first is the
    default) until SIGTERM / SIGINT; returns the stop signal. Bad settings, a busy port or a
    model that cannot be opened raise :class:`ServeConfigError` before serving starts."""
    return _server().run(models, settings, announce=announce)


__all__ = [
    "DTYPES",
    "INSTALL_HINT",
    "POOLINGS",
    "ModelSpec",
    "RequestError",
    "ServeConfigError",
    "ServeSettings",
    "ServeUnavailableError",
    "available",
    "parse_model_specs",
    "run",
]
