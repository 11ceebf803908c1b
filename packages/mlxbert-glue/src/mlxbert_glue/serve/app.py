"""The ASGI application: FastAPI with the routes, error handlers that always answer JSON,
a guard that counts, times and size-limits every request, and the model worker's life."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .errors import RequestError
from .metrics import route_label
from .responses import describe_validation, error_response
from .routes import router
from .service import ClientGone, Service

log = logging.getLogger("mlxbert.serve")

DESCRIPTION = """BERT-family classifiers and embedders on MLX, with dynamic batching and a
response cache. `/predict`, `/embed`, `/tokenize`, `/health`, `/info` and `/metrics` follow
Hugging Face text-embeddings-inference; `/v1/embeddings` is OpenAI's embeddings API."""

_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class Guard:
    """Pure ASGI middleware: refuses bodies over ``--payload-limit`` (413) before they are
    read, and records every request's route, status and time in the metrics."""

    def __init__(self, app: ASGIApp, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.service.metrics
        route = route_label(scope["path"])
        limit = self.service.settings.payload_limit
        status = 500
        started = time.perf_counter()

        async def noted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(received, limit))
            return message

        metrics.in_flight.inc()
        try:
            length = _content_length(scope)
            if length is not None and length > limit:
                metrics.errors.labels(route, "payload_too_large").inc()
                response = error_response(
                    scope["path"], 413, "payload_too_large", _too_large(length, limit)
                )
                await response(scope, receive, noted_send)
            else:
                await self.app(scope, limited_receive, noted_send)
        finally:
            metrics.in_flight.dec()
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(size: int, limit: int) -> str:
    return (
        f"the body has {size} bytes; this server takes at most {limit} (--payload-limit): "
        "split the request"
    )


def _answer(request: Request, status: int, kind: str, message: str, **extra: Any) -> Response:
    request.app.state.service.metrics.errors.labels(route_label(request.url.path), kind).inc()
    return error_response(request.url.path, status, kind, message, **extra)


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return _answer(request, exc.status, exc.kind, exc.message, param=exc.param, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    status, kind, message = describe_validation(exc.errors(), getattr(exc, "body", None))
    return _answer(request, status, kind, message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_KINDS.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = (
            f"no route {request.url.path}: the routes are /predict, /embed, /v1/embeddings, "
            "/tokenize, /health, /info, /metrics (API docs at /docs)"
        )
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return _answer(request, exc.status_code, kind, message, headers=getattr(exc, "headers", None))


async def _client_gone(request: Request, exc: Exception) -> Response:
    request.app.state.service.metrics.errors.labels(
        route_label(request.url.path), "disconnected"
    ).inc()
    return Response(status_code=499)  # nobody reads it; the metrics record it as 499


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return _answer(request, 500, "internal", f"internal error: {type(exc).__name__}: {exc}")


def create_app(service: Service, *, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The FastAPI app over a :class:`Service` with its models loaded; stopping the app
    (lifespan shutdown) stops the service's worker."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.attach(asyncio.get_running_loop())
        if on_ready is not None:
            on_ready()
        yield
        rejected = await asyncio.to_thread(service.close)
        if rejected:
            log.info("rejected %d queued inputs on shutdown", rejected)

    app = FastAPI(
        title="mlxbert serve", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.service = service
    app.include_router(router)
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(Guard, service=service)
    return app


__all__ = ["Guard", "create_app"]
