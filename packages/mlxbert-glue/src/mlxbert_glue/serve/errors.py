"""What can go wrong in the server, as exceptions that carry their HTTP answer.

No web-framework imports here: the batcher and the model registry raise these too, and the
package must import without the ``serve`` extra.
"""

from __future__ import annotations

INSTALL_HINT = 'pip install "mlxbert-glue[serve]"'


class ServeConfigError(ValueError):
    """Bad settings or a model that cannot be served; raised before the server listens.
    The message names the flag or model and says what to do."""


class ServeUnavailableError(ImportError):
    """The web stack of the ``serve`` extra is not installed."""


class RequestError(Exception):
    """A request the server answers with an error: HTTP ``status``, a short ``kind`` (also a
    metrics label), a message that says what to fix, and extra headers (``Retry-After``)."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param
        self.headers = dict(headers or {})


class QueueFullError(RequestError):
    """More inputs are waiting than ``--max-queue`` allows: try again shortly (503)."""

    def __init__(self, waiting: int, limit: int, retry_after: int):
        super().__init__(
            503,
            "overloaded",
            f"the server is busy: {waiting} inputs are waiting and --max-queue is {limit}; "
            f"retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class ShuttingDownError(RequestError):
    """The server is stopping and takes no new work (503)."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "shutting_down",
            "the server is shutting down; send the request to another instance",
            headers={"Retry-After": "1"},
        )


class ModelFailedError(RequestError):
    """The model raised while computing a batch (500); the server keeps serving."""

    def __init__(self, detail: str):
        super().__init__(500, "model_error", f"the model failed on this batch: {detail}")


__all__ = [
    "INSTALL_HINT",
    "ModelFailedError",
    "QueueFullError",
    "RequestError",
    "ServeConfigError",
    "ServeUnavailableError",
    "ShuttingDownError",
]
