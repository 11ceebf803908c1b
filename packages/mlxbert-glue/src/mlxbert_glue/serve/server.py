"""Run the server: listen, load the models, serve, stop cleanly on SIGTERM / SIGINT.

Threads: the model worker thread loads the models and then computes batches (the only
thread that runs MLX); uvicorn's event loop - HTTP, validation, tokenization on arrival,
the cache - runs in the calling thread, which also takes the stop signals. A stop signal
makes new requests get 503, lets requests in progress finish, rejects (503) whatever still
waits after ``--shutdown-timeout`` seconds, finishes the batch being computed, and returns
normally.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from types import FrameType

import uvicorn

from .app import create_app
from .errors import ServeConfigError
from .models import ServedModel
from .service import FORWARD_GRACE, Service
from .settings import ModelSpec, ServeSettings, parse_model_specs


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal also starts the service's shutdown and
    ends :meth:`run` normally (uvicorn re-raises it after shutting down, which would end the
    process with the signal's status instead of 0)."""

    def __init__(self, config: uvicorn.Config, service: Service):
        super().__init__(config)
        self.service = service
        self.stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopped_by = sig
        loop = self.service.loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(self.service.begin_shutdown)
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting
        else:
            self.should_exit = True


def _specs(models: Sequence[str | ModelSpec]) -> list[ModelSpec]:
    if models and all(isinstance(m, ModelSpec) for m in models):
        return list(models)  # type: ignore[arg-type]
    return parse_model_specs([m if isinstance(m, str) else f"{m.name}={m.source}" for m in models])


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, or :class:`ServeConfigError` saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeConfigError(f"--host {host}: not an address this machine has ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
            "(0 takes any free one) or stop what uses it"
        ) from None
    sock.setblocking(False)
    return sock


def _describe(model: ServedModel) -> str:
    if model.classifier is not None:
        return f"{model.name} (classifier, {model.classifier.task_type})"
    return f"{model.name} (embedder)"


def run(
    models: Sequence[str | ModelSpec],
    settings: ServeSettings | None = None,
    *,
    announce: Callable[[str], None] | None = None,
) -> int | None:
    """Serve ``models`` until SIGTERM / SIGINT; returns the stop signal's number.

    Settings are checked and the port is taken before any model loads, so a wrong flag or a
    busy port fails at once. ``announce`` gets one line when the server is ready (default:
    printed), with the address actually used (``port=0`` picks a free one).
    """
    settings = (settings or ServeSettings()).validate()
    specs = _specs(models)
    say = announce or (lambda line: print(line, flush=True))
    sock = listen(settings.host, settings.port)
    service = Service(settings)
    try:
        host, port = sock.getsockname()[:2]
        loaded = service.start(specs)
        for model in loaded:
            if model.note:
                say(f"note: {model.name}: {model.note}")
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}"
        line = (
            f"mlxbert serve: {', '.join(map(_describe, loaded))} on {url} "
            f"({service.device}; API docs at {url}/docs)"
        )
        config = uvicorn.Config(
            create_app(service, on_ready=lambda: say(line)),
            log_level=settings.log_level,
            access_log=settings.access_log,
            # queued inputs are rejected after --shutdown-timeout; the forward in progress
            # may take a while longer
            timeout_graceful_shutdown=settings.shutdown_timeout + FORWARD_GRACE,
            lifespan="on",
            server_header=False,
        )
        server = _Server(config, service)
        # What is loaded by now (models, tokenizers, libraries) lives as long as the server:
        # keep it out of the collector's full passes, which would walk all of it again and
        # again while holding the interpreter lock that requests and forwards both need.
        gc.collect()
        gc.freeze()
        server.run(sockets=[sock])
    finally:
        service.close()
        sock.close()
    if server.stopped_by is not None:
        say(f"mlxbert serve: stopped ({signal.Signals(server.stopped_by).name})")
    sys.stdout.flush()
    return server.stopped_by


__all__ = ["listen", "run"]
