"""``mlxbert serve``: the HTTP server of mlxbert-glue (its ``serve`` extra) for classifiers
and embedders."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mlxbert_glue import serve as glue_serve

from ..errors import InputError
from ._common import console, use_device

Opt = typer.Option
_D = glue_serve.ServeSettings()
INSTALL_HINT = 'pip install "mlxbert-kaggle[serve]"'


def _say(line: str) -> None:
    console.print(escape(line), highlight=False, soft_wrap=True)


def serve(
    model: Annotated[
        list[str],
        Opt(
            "--model",
            help="PATH_OR_NAME or NAME=PATH_OR_NAME (repeatable; the first is the default): a "
            "trained model folder (classifier) or an encoder folder, preset name or hub id "
            "(embeddings).",
        ),
    ],
    host: Annotated[str, Opt(help="Address to listen on (0.0.0.0: every interface).")] = _D.host,
    port: Annotated[int, Opt(help="Port (0: any free one).")] = _D.port,
    max_batch_tokens: Annotated[
        int,
        Opt(
            "--max-batch-tokens",
            help="Tokens per forward: inputs x longest (a model that packs: their own).",
        ),
    ] = _D.max_batch_tokens,
    max_batch_requests: Annotated[
        int, Opt("--max-batch-requests", help="Inputs taken at once (1: batching off).")
    ] = _D.max_batch_requests,
    max_wait_ms: Annotated[
        float, Opt("--max-wait-ms", help="Wait for more inputs when a batch is not full.")
    ] = _D.max_wait_ms,
    max_client_batch_size: Annotated[
        int, Opt("--max-client-batch-size", help="Inputs per request (more: 413).")
    ] = _D.max_client_batch_size,
    max_queue: Annotated[
        int, Opt("--max-queue", help="Inputs that may wait (more: 503 with Retry-After).")
    ] = _D.max_queue,
    cache_size: Annotated[
        int, Opt("--cache-size", help="Answers kept in the LRU cache (0: off).")
    ] = _D.cache_size,
    auto_truncate: Annotated[
        bool, Opt(help="Truncate over-long inputs unless a request says otherwise (else 413).")
    ] = _D.auto_truncate,
    request_timeout: Annotated[
        float, Opt("--request-timeout", help="Seconds per request (more: 504).")
    ] = _D.request_timeout,
    payload_limit: Annotated[
        int, Opt("--payload-limit", help="Largest request body in bytes (more: 413).")
    ] = _D.payload_limit,
    pooling: Annotated[str, Opt(help="Embedding pooling: mean, cls, max or pooler.")] = _D.pooling,
    dtype: Annotated[
        str | None, Opt(help="float32, bfloat16 or float16 (default: as saved).")
    ] = None,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
    shutdown_timeout: Annotated[
        float,
        Opt("--shutdown-timeout", help="On SIGTERM/SIGINT, seconds to finish requests."),
    ] = _D.shutdown_timeout,
    access_log: Annotated[bool, Opt(help="Log every request.")] = _D.access_log,
    log_level: Annotated[
        str, Opt("--log-level", help="critical, error, warning, info or debug.")
    ] = _D.log_level,
) -> None:
    """Serve classifiers and embedders over HTTP, with dynamic batching and a cache.

    Routes: /predict, /embed, /v1/embeddings (OpenAI), /tokenize, /health, /info, /metrics;
    API docs at /docs. Stops on SIGTERM / Ctrl-C."""
    settings = glue_serve.ServeSettings(
        host=host,
        port=port,
        max_batch_tokens=max_batch_tokens,
        max_batch_requests=max_batch_requests,
        max_wait_ms=max_wait_ms,
        max_client_batch_size=max_client_batch_size,
        max_queue=max_queue,
        cache_size=cache_size,
        auto_truncate=auto_truncate,
        request_timeout=request_timeout,
        payload_limit=payload_limit,
        pooling=pooling,
        dtype=dtype,
        shutdown_timeout=shutdown_timeout,
        access_log=access_log,
        log_level=log_level,
    )
    try:
        settings.validate()
        specs = glue_serve.parse_model_specs(model)
    except glue_serve.ServeConfigError as exc:
        raise InputError(str(exc)) from None
    if not glue_serve.available():
        raise InputError(f"mlxbert serve needs the serve extra: {INSTALL_HINT}")
    use_device(device)
    try:
        glue_serve.run(specs, settings, announce=_say)
    except glue_serve.ServeConfigError as exc:
        raise InputError(str(exc)) from None
