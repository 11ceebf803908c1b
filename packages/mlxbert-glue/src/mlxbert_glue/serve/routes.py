"""The HTTP routes. Each one checks its request's shape, asks the :class:`Service`, and
returns JSON; the shapes follow text-embeddings-inference (``/predict``, ``/embed``,
``/tokenize``, ``/health``, ``/info``, ``/metrics``) and OpenAI (``/v1/embeddings``)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import __version__
from .errors import RequestError
from .responses import FastJSONResponse
from .schemas import (
    EmbedRequest,
    Error,
    Health,
    Info,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    OpenAIError,
    Prediction,
    PredictRequest,
    Token,
    TokenizeRequest,
)
from .service import Service

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": what}
    for code, what in {
        400: "malformed JSON, or the model cannot do this",
        404: "unknown model",
        413: "too many inputs, an over-long input, or a body over --payload-limit",
        422: "a field is missing or of the wrong type, or inputs are empty",
        503: "the queue is full (see Retry-After) or the server is stopping",
        504: "no answer within --request-timeout",
    }.items()
}
_OPENAI_ERRORS = {code: {**value, "model": OpenAIError} for code, value in _ERRORS.items()}


def _service(request: Request) -> Service:
    return request.app.state.service


def _texts(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def predict_inputs(
    value: str | list[str] | list[list[str]],
) -> tuple[list[tuple[str, str | None]], bool]:
    """text-embeddings-inference's ``/predict`` inputs -> ((text, pair) list, single?)."""
    if isinstance(value, str):
        return [(value, None)], True
    if not value:
        return [], False
    if all(isinstance(x, str) for x in value):
        if len(value) == 1:
            return [(value[0], None)], True
        if len(value) == 2:
            return [(value[0], value[1])], True
        raise RequestError(
            422,
            "validation",
            f"`inputs` is a list of {len(value)} texts: a list of texts is one input, a text "
            '["a"] or a pair ["a", "b"]; send a batch as a list of lists: [["a"], ["b"], ["c"]] '
            '(pairs: [["a", "b"], ["c", "d"]])',
            param="inputs",
        )
    out: list[tuple[str, str | None]] = []
    for index, row in enumerate(value):
        if not isinstance(row, list) or len(row) not in (1, 2):
            size = len(row) if isinstance(row, list) else 0
            raise RequestError(
                422,
                "validation",
                f"`inputs[{index}]` holds {size} texts: each batch entry is [text] or "
                "[text, text_pair]",
                param="inputs",
            )
        out.append((row[0], row[1] if len(row) == 2 else None))
    return out, False


@router.post(
    "/predict",
    response_model=Prediction | list[Prediction],
    responses=_ERRORS,
    summary="Classify a text, a pair, or a batch of either",
)
async def predict(body: PredictRequest, request: Request) -> Response:
    """One input gives one object, a batch a list: ``label``, ``confidence`` and ``scores``
    for a class, ``labels`` for multilabel (over the fitted thresholds), ``value`` for
    regression - the same numbers as ``Classifier.classify_batch``."""
    inputs, single = predict_inputs(body.inputs)
    results = await _service(request).predict(
        body.model, inputs, truncate=body.truncate, watch=request.receive
    )
    return FastJSONResponse(results[0] if single else results)


@router.post(
    "/embed",
    response_model=list[list[float]],
    responses=_ERRORS,
    summary="Sentence embeddings (one vector per input)",
)
async def embed(body: EmbedRequest, request: Request) -> Response:
    _, vectors, _ = await _service(request).embed(
        body.model,
        _texts(body.inputs),
        normalize=body.normalize,
        truncate=body.truncate,
        watch=request.receive,
    )
    return FastJSONResponse(vectors)


def _encode(vector: np.ndarray, fmt: str) -> np.ndarray | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


@router.post(
    "/v1/embeddings",
    response_model=OpenAIEmbeddingResponse,
    responses=_OPENAI_ERRORS,
    summary="OpenAI-compatible embeddings",
)
async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request) -> Response:
    service = _service(request)
    model = service.model(body.model)
    if body.dimensions is not None and body.dimensions != model.dimension:
        raise RequestError(
            400,
            "unsupported_dimensions",
            f"`dimensions` {body.dimensions}: model {model.name!r} gives {model.dimension}-"
            "dimensional vectors and cannot shorten them; leave `dimensions` out",
            param="dimensions",
        )
    model, vectors, tokens = await service.embed(
        model.name,
        _texts(body.input),
        normalize=body.normalize,
        truncate=body.truncate,
        watch=request.receive,
        field="input",
    )
    data = [
        {"object": "embedding", "embedding": _encode(vector, body.encoding_format), "index": i}
        for i, vector in enumerate(vectors)
    ]
    return FastJSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


@router.post(
    "/tokenize",
    response_model=list[list[Token]],
    responses=_ERRORS,
    summary="Tokens of each input, with their character spans",
)
async def tokenize(body: TokenizeRequest, request: Request) -> Response:
    tokens = _service(request).tokenize(
        body.model, _texts(body.inputs), add_special_tokens=body.add_special_tokens
    )
    return FastJSONResponse(tokens)


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request) -> Response:
    """200 while the model worker runs and the server takes requests, else 503."""
    ok = _service(request).healthy
    return FastJSONResponse(
        {"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503
    )


@router.get("/info", response_model=Info, summary="Models, their tasks and labels, and the limits")
async def info(request: Request) -> Response:
    service = _service(request)
    settings = service.settings
    models = [model.describe(settings.pooling) for model in service.models.values()]
    first = service.default_model
    if first.classifier is not None:
        names = first.classifier.info.label_names()
        model_type: dict[str, Any] = {
            "classifier": {
                "id2label": {str(i): n for i, n in enumerate(names)},
                "label2id": {n: i for i, n in enumerate(names)},
            }
        }
    else:
        model_type = {"embedding": {"pooling": settings.pooling}}
    return FastJSONResponse(
        {
            "model_id": first.source,
            "model_dtype": first.dtype,
            "model_type": model_type,
            "max_input_length": first.max_length or first.embed_max_length,
            "max_batch_tokens": settings.max_batch_tokens,
            "max_batch_requests": settings.max_batch_requests,
            "max_client_batch_size": settings.max_client_batch_size,
            "max_concurrent_requests": settings.max_queue,
            "auto_truncate": settings.auto_truncate,
            "device": service.device,
            "version": __version__,
            "models": models,
            "limits": settings.limits(),
        }
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    service = _service(request)
    service.metrics.cache_entries.set(len(service.cache))
    return Response(service.metrics.render(), media_type=service.metrics.content_type)


__all__ = ["predict_inputs", "router"]
