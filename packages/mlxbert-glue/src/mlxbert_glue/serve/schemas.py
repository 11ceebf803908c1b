"""Request and response models of the HTTP API (they make the OpenAPI page at ``/docs``).

Requests are strict (``"true"`` is not a boolean, ``1`` is not a text). The server's own
routes refuse unknown fields, so a misspelt option is an error rather than silently
ignored; ``/v1/embeddings`` ignores them, as OpenAI clients send fields of their own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_MODEL = Field(None, description="Which served model answers (default: the first --model).")
_TRUNCATE = Field(
    None,
    description="Cut inputs longer than the model's maximum length (default: the server's "
    "--auto-truncate); without it an over-long input gets 413.",
)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class PredictRequest(_Strict):
    """``inputs``, as Hugging Face text-embeddings-inference takes them: a text
    (``"a"``), a pair (``["a", "b"]``), or a batch of either (``[["a"], ["b"]]``,
    ``[["a", "b"], ["c", "d"]]``)."""

    inputs: str | list[str] | list[list[str]] = Field(
        description="A text, a pair [text, text_pair], or a batch: a list of [text] or "
        "[text, text_pair] lists.",
        examples=["a gripping, funny film", ["A cat sat.", "An animal sat."]],
    )
    model: str | None = _MODEL
    truncate: bool | None = _TRUNCATE


class Prediction(BaseModel):
    """One answer, shaped by the head: ``label`` / ``confidence`` / ``scores`` for a class,
    ``labels`` (over the fitted thresholds) for multilabel, ``value`` for regression."""

    label: str | list[str] | None = None
    labels: list[str] | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    value: float | list[float] | None = None


class EmbedRequest(_Strict):
    inputs: str | list[str] = Field(description="A text or a list of texts.")
    normalize: bool = Field(True, description="L2-normalise each vector.")
    truncate: bool | None = _TRUNCATE
    truncation_direction: Literal["right", "Right"] | None = Field(
        None,
        description="Only right truncation is supported (text-embeddings-inference's default).",
    )
    model: str | None = _MODEL


class OpenAIEmbeddingRequest(BaseModel):
    """OpenAI's embeddings request (``input``, ``model``, ``encoding_format``,
    ``dimensions``, ``user``) plus ``normalize`` and ``truncate``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    input: str | list[str] = Field(description="A text or a list of texts.")
    model: str | None = Field(None, description="A served model's name (default: the first).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(
        None, description="Accepted only when it equals the model's dimension."
    )
    user: str | None = None
    normalize: bool = True
    truncate: bool | None = _TRUNCATE


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str = Field(
        description="The vector, or with encoding_format=base64 its little-endian float32 bytes"
    )
    index: int


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class TokenizeRequest(_Strict):
    inputs: str | list[str] = Field(description="A text or a list of texts.")
    add_special_tokens: bool = True
    model: str | None = _MODEL


class Token(BaseModel):
    id: int
    text: str = Field(description="The token's characters in the input (special: the token)")
    special: bool
    start: int | None = None
    stop: int | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]


class ModelInfo(BaseModel):
    name: str
    source: str
    kind: Literal["classifier", "embedder"]
    task: str | None = None
    head: str | None = None
    prediction: str | None = Field(None, description="label, labels or value")
    labels: list[str] | None = None
    max_length: int | None = Field(None, description="tokens per /predict input")
    embedding_max_length: int | None = Field(None, description="tokens per /embed input")
    dimension: int | None = None
    pooling: str
    dtype: str
    note: str | None = None


class Limits(BaseModel):
    max_batch_tokens: int
    max_batch_requests: int
    max_wait_ms: float
    max_client_batch_size: int
    max_queue: int
    cache_size: int
    auto_truncate: bool
    request_timeout_s: float
    payload_limit_bytes: int


class Info(BaseModel):
    """The default model's facts at the top level (as text-embeddings-inference's
    ``/info``), every served model under ``models``, and the server's limits."""

    model_id: str
    model_dtype: str
    model_type: dict
    max_input_length: int | None
    max_batch_tokens: int
    max_batch_requests: int
    max_client_batch_size: int
    max_concurrent_requests: int = Field(description="inputs that may wait (--max-queue)")
    auto_truncate: bool
    device: str
    version: str
    models: list[ModelInfo]
    limits: Limits


class Error(BaseModel):
    error: str = Field(description="What is wrong and what to do")
    error_type: str


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


__all__ = [
    "EmbedRequest",
    "Error",
    "Health",
    "Info",
    "Limits",
    "ModelInfo",
    "OpenAIEmbedding",
    "OpenAIEmbeddingRequest",
    "OpenAIEmbeddingResponse",
    "OpenAIError",
    "OpenAIErrorDetail",
    "OpenAIUsage",
    "PredictRequest",
    "Prediction",
    "Token",
    "TokenizeRequest",
]
