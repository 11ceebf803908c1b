"""What the server is told: the models to serve (``--model``) and its limits (the flags)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServeConfigError

POOLINGS = ("mean", "cls", "max", "pooler")
DTYPES = ("float32", "bfloat16", "float16")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model``: the name clients use (``model`` in requests) and what to open."""

    name: str
    source: str


def _default_name(source: str) -> str:
    path = Path(source)
    return path.resolve().name if path.exists() else source


def parse_model_specs(values: Sequence[str]) -> list[ModelSpec]:
    """``PATH_OR_NAME`` or ``NAME=PATH_OR_NAME`` for each ``--model``; the first is the
    default model. A bare folder is named after the folder, anything else (preset name, hub
    id) as given."""
    if not values:
        raise ServeConfigError("give at least one --model PATH_OR_NAME (or NAME=PATH_OR_NAME)")
    specs: list[ModelSpec] = []
    for value in values:
        name, sep, source = value.partition("=")
        if sep and _NAME.match(name):
            source = source.strip()
        else:
            name, source = "", value.strip()
        if not source:
            raise ServeConfigError(f"--model {value!r}: nothing to open after '='")
        specs.append(ModelSpec(name or _default_name(source), source))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ServeConfigError(
                f"--model: the name {spec.name!r} is given twice ({seen[spec.name]} and "
                f"{spec.source}); name them with NAME=PATH"
            )
        seen[spec.name] = spec.source
    return specs


@dataclass(frozen=True)
class ServeSettings:
    """The server's address, batching, cache and limits (one field per ``mlxbert serve``
    flag: ``max_batch_tokens`` is ``--max-batch-tokens``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: tokens in one forward: inputs x longest input (a packing model: the inputs' own)
    max_batch_tokens: int = 16384
    #: inputs (texts or pairs) the worker takes at once; 1 turns batching off
    max_batch_requests: int = 32
    #: how long the worker waits for more inputs when a batch is not full
    max_wait_ms: float = 5.0
    #: inputs in one request
    max_client_batch_size: int = 32
    #: inputs waiting for the model; more gets 503 with Retry-After
    max_queue: int = 1024
    #: answers kept in the LRU cache; 0 turns it off
    cache_size: int = 4096
    #: truncate over-long inputs when a request does not say (else 413)
    auto_truncate: bool = False
    #: seconds a request may take before it gets 504
    request_timeout: float = 30.0
    #: largest request body in bytes
    payload_limit: int = 2_000_000
    #: sentence-embedding pooling of /embed and /v1/embeddings
    pooling: str = "mean"
    #: weights' dtype (None: as saved)
    dtype: str | None = None
    #: seconds to finish queued requests after SIGTERM / SIGINT before rejecting them
    shutdown_timeout: float = 30.0
    access_log: bool = False
    log_level: str = "info"

    @staticmethod
    def flag(field: str) -> str:
        return "--" + field.replace("_", "-")

    def problems(self) -> list[str]:
        """Every setting that is out of range, as ``--flag: what is wrong``."""
        out: list[str] = []

        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                out.append(f"{self.flag(field)} {getattr(self, field)!r}: {what}")

        need(0 <= self.port <= 65535, "port", "use 0-65535 (0: any free port)")
        need(bool(self.host), "host", "give an address such as 127.0.0.1 or 0.0.0.0")
        need(self.max_batch_tokens >= 1, "max_batch_tokens", "must be at least 1")
        need(self.max_batch_requests >= 1, "max_batch_requests", "must be at least 1")
        need(0 <= self.max_wait_ms <= 10_000, "max_wait_ms", "use 0-10000 ms")
        need(self.max_client_batch_size >= 1, "max_client_batch_size", "must be at least 1")
        need(
            self.max_queue >= self.max_client_batch_size,
            "max_queue",
            f"must hold at least one full request (--max-client-batch-size "
            f"{self.max_client_batch_size})",
        )
        need(self.cache_size >= 0, "cache_size", "must be 0 (off) or more")
        need(self.request_timeout > 0, "request_timeout", "must be more than 0 s")
        need(self.payload_limit >= 1024, "payload_limit", "must be at least 1024 bytes")
        need(self.pooling in POOLINGS, "pooling", f"use one of {', '.join(POOLINGS)}")
        need(self.dtype is None or self.dtype in DTYPES, "dtype", f"use {', '.join(DTYPES)}")
        need(self.shutdown_timeout >= 0, "shutdown_timeout", "must be 0 s or more")
        need(self.log_level in LOG_LEVELS, "log_level", f"use {', '.join(LOG_LEVELS)}")
        return out

    def validate(self) -> ServeSettings:
        problems = self.problems()
        if problems:
            raise ServeConfigError("; ".join(problems))
        return self

    def replace(self, **changes: Any) -> ServeSettings:
        return dataclasses.replace(self, **changes)

    def limits(self) -> dict[str, Any]:
        """The limits a client should know (``/info``)."""
        return {
            "max_batch_tokens": self.max_batch_tokens,
            "max_batch_requests": self.max_batch_requests,
            "max_wait_ms": self.max_wait_ms,
            "max_client_batch_size": self.max_client_batch_size,
            "max_queue": self.max_queue,
            "cache_size": self.cache_size,
            "auto_truncate": self.auto_truncate,
            "request_timeout_s": self.request_timeout,
            "payload_limit_bytes": self.payload_limit,
        }


__all__ = ["DTYPES", "POOLINGS", "ModelSpec", "ServeSettings", "parse_model_specs"]
