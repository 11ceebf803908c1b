"""What the routes do, without the web framework: pick the model, check the inputs, answer
from the cache or queue the rest for the model worker, and wait (with a timeout, and no
longer than the client stays connected).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any

import mlx.core as mx
import numpy as np

from .batcher import Batcher, BatchKey, Item, Job
from .cache import LRUCache
from .errors import RequestError, ShuttingDownError
from .metrics import Metrics
from .models import ServedModel, load_model
from .settings import ModelSpec, ServeSettings

#: what a route passes to learn that its client went away (ASGI ``receive``)
Watch = Callable[[], Awaitable[Any]]
#: the operations (the second part of a batch key)
PREDICT = "predict"
EMBED = "embed"
#: seconds a forward in progress may still take when the server stops
FORWARD_GRACE = 60.0
_MISS = object()


class ClientGone(Exception):
    """The client disconnected while its request waited; nothing is sent back."""


class Service:
    """The served models, the batcher with its worker thread, the cache and the metrics."""

    def __init__(self, settings: ServeSettings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.cache = LRUCache(settings.cache_size)
        self.models: dict[str, ServedModel] = {}
        self.device = "cpu"
        self.batcher = Batcher(
            self._compute,
            max_batch_tokens=settings.max_batch_tokens,
            max_batch_requests=settings.max_batch_requests,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=self.metrics.observe_batch,
            on_depth=self.metrics.queue_depth.set,
            on_busy=self.metrics.forward_inputs.set,
            on_take=self.metrics.observe_take,
            packed=self._packs,
        )
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------------
    def start(self, specs: Sequence[ModelSpec]) -> list[ServedModel]:
        """Start the model worker thread, which opens every model, runs one forward of each
        (MLX builds its kernels then, not on a client's time) and then computes batches:
        MLX runs on that one thread. Returns the models once loaded, or raises what loading
        raised."""
        loaded: Future[list[ServedModel]] = Future()
        device = mx.default_device()  # the caller's choice (--device) holds on the worker
        self.worker = threading.Thread(
            target=self._worker,
            args=(specs, loaded, device),
            name="mlxbert-serve-model",
            daemon=True,
        )
        self.worker.start()
        return loaded.result()

    def _worker(self, specs: Sequence[ModelSpec], loaded: Future, device: mx.Device) -> None:
        try:
            try:
                mx.set_default_device(device)
                models = [load_model(spec, dtype=self.settings.dtype) for spec in specs]
                for model in models:
                    model.embed(["warm up"], normalize=True, pooling=self.settings.pooling)
                    if model.classifier is not None:
                        model.predict(["warm up"], None)
                self.device = mx.default_device().type.name
                self.models = {model.name: model for model in models}
            except BaseException as exc:
                loaded.set_exception(exc)
                return
            loaded.set_result(models)
            self.batcher.run_here()
        finally:
            # MLX 0.32 may abort at process exit unless a thread that ran MLX destroys its
            # streams before it ends.
            mx.clear_streams()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the routes run on (for :meth:`begin_shutdown` from a signal)."""
        self.loop = loop

    def begin_shutdown(self) -> None:
        """On the event loop, when a stop signal arrives: new requests get 503 and
        ``--shutdown-timeout`` seconds later every input still waiting is rejected (503);
        the batch being computed finishes."""
        if self.stopping:
            return
        self.stopping = True
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.shutdown_timeout, self._reject_waiting)

    def _reject_waiting(self) -> None:
        dropped = self.batcher.reject_waiting()
        if dropped:
            self.metrics.cancelled.labels("shutdown").inc(dropped)

    def close(self) -> int:
        """Reject what still waits and stop the worker (after its current batch)."""
        self.stopping = True
        rejected = self.batcher.close()
        worker = self.worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(FORWARD_GRACE)
        return rejected

    @property
    def healthy(self) -> bool:
        return self.batcher.alive and not self.stopping

    @property
    def default_model(self) -> ServedModel:
        return next(iter(self.models.values()))

    # -- checks -----------------------------------------------------------------------------
    def model(self, name: str | None) -> ServedModel:
        if name is None:
            return self.default_model
        found = self.models.get(name)
        if found is None:
            raise RequestError(
                404,
                "unknown_model",
                f"model {name!r} is not served here; served models: "
                f"{', '.join(map(repr, self.models))}",
                param="model",
            )
        return found

    def check_count(self, count: int, field: str = "inputs") -> None:
        if count == 0:
            raise RequestError(
                422, "empty", f"`{field}` is empty: send at least one input", param=field
            )
        limit = self.settings.max_client_batch_size
        if count > limit:
            raise RequestError(
                413,
                "too_many_inputs",
                f"`{field}` holds {count} inputs; this server takes at most {limit} per request "
                "(--max-client-batch-size): split the request",
                param=field,
            )

    def _fit(
        self, lengths: list[int], limit: int | None, truncate: bool | None, field: str
    ) -> list[int]:
        """Token counts after truncation, or 413 for the first over-long input."""
        if limit is None:
            return lengths
        cut = self.settings.auto_truncate if truncate is None else truncate
        if not cut:
            for index, length in enumerate(lengths):
                if length > limit:
                    where = field if len(lengths) == 1 else f"{field}[{index}]"
                    raise RequestError(
                        413,
                        "too_long",
                        f"`{where}` has {length} tokens; the model takes at most {limit}: "
                        'shorten it or send "truncate": true',
                        param=field,
                    )
        return [min(length, limit) for length in lengths]

    # -- routes -----------------------------------------------------------------------------
    async def predict(
        self,
        name: str | None,
        inputs: Sequence[tuple[str, str | None]],
        *,
        truncate: bool | None = None,
        watch: Watch | None = None,
    ) -> list[dict[str, Any]]:
        """Classifier results for texts or ``(text, text_pair)`` inputs, in order."""
        model = self.model(name)
        if model.classifier is None:
            raise RequestError(
                400,
                "not_a_classifier",
                f"model {model.name!r} is an embedding model, not a classifier; use /embed, or "
                "serve a trained model folder",
                param="model",
            )
        self.check_count(len(inputs))
        texts = [text for text, _ in inputs]
        pairs = [pair for _, pair in inputs]
        lengths = model.count_tokens(texts, pairs if any(p is not None for p in pairs) else None)
        tokens = self._fit(lengths, model.max_length, truncate, "inputs")
        keys = [(model.name, PREDICT, pair is not None) for pair in pairs]
        return await self._answer(keys, texts, pairs, tokens, watch)

    async def embed(
        self,
        name: str | None,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        truncate: bool | None = None,
        watch: Watch | None = None,
        field: str = "inputs",
    ) -> tuple[ServedModel, list[np.ndarray], int]:
        """Sentence embeddings (model, vectors in order, tokens used)."""
        model = self.model(name)
        self.check_count(len(texts), field)
        lengths = model.count_tokens(texts, None)
        tokens = self._fit(lengths, model.embed_max_length, truncate, field)
        key = (model.name, EMBED, bool(normalize))
        vectors = await self._answer(
            [key] * len(texts), list(texts), [None] * len(texts), tokens, watch
        )
        return model, vectors, sum(tokens)

    def tokenize(
        self, name: str | None, texts: Sequence[str], *, add_special_tokens: bool = True
    ) -> list[list[dict]]:
        model = self.model(name)
        self.check_count(len(texts))
        return model.tokens(texts, add_special_tokens=add_special_tokens)

    # -- cache, queue, wait -----------------------------------------------------------------
    async def _answer(
        self,
        keys: list[BatchKey],
        texts: list[str],
        pairs: list[str | None],
        tokens: list[int],
        watch: Watch | None,
    ) -> list[Any]:
        if self.stopping:
            raise ShuttingDownError()
        results: list[Any] = [None] * len(texts)
        job = Job(asyncio.get_running_loop())
        slots: list[int] = []
        cache = self.cache
        for index, (key, text, pair) in enumerate(zip(keys, texts, pairs)):
            if cache.enabled:
                found = cache.get((*key, text, pair), _MISS)
                if found is not _MISS:
                    results[index] = found
                    self.metrics.cache_hits.inc()
                    continue
                self.metrics.cache_misses.inc()
            job.add(key, text, pair, tokens[index])
            slots.append(index)
        if not slots:
            return results
        values = await self._wait(job, watch)
        for index, item, value in zip(slots, job.items, values):
            results[index] = value
            if cache.enabled:
                cache.put((*item.key, item.text, item.pair), value)
        if cache.enabled:
            self.metrics.cache_entries.set(len(cache))
        return results

    async def _wait(self, job: Job, watch: Watch | None) -> list[Any]:
        self.batcher.submit(job)
        watcher = asyncio.ensure_future(_gone(watch)) if watch is not None else None
        waiting: set[asyncio.Future[Any]] = {job.future}
        if watcher is not None:
            waiting.add(watcher)
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=self.settings.request_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:  # the server is stopping and gave up on this request
            self._drop(job, "cancelled")
            raise
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
        if job.future in done:
            return job.future.result()
        if watcher is not None and watcher in done:
            self._drop(job, "disconnected")
            raise ClientGone()
        self._drop(job, "timeout")
        raise RequestError(
            504,
            "timeout",
            f"no answer within {self.settings.request_timeout:g} s (--request-timeout); the "
            "server is busy: retry later or send fewer inputs",
        )

    def _drop(self, job: Job, reason: str) -> None:
        removed = self.batcher.cancel(job)
        if removed:
            self.metrics.cancelled.labels(reason).inc(removed)
        if not job.future.done():
            job.future.cancel()

    # -- on the worker thread ---------------------------------------------------------------
    def _packs(self, key: BatchKey) -> bool:
        model = self.models.get(str(key[0]))
        return model is not None and model.packs_batches

    def _compute(self, key: BatchKey, items: list[Item]) -> list[Any]:
        model = self.models[str(key[0])]
        texts = [item.text for item in items]
        if key[1] == PREDICT:
            pairs = [str(item.pair) for item in items] if key[2] else None
            return model.predict(texts, pairs)
        vectors = model.embed(texts, normalize=bool(key[2]), pooling=self.settings.pooling)
        return list(vectors)


async def _gone(watch: Watch) -> None:
    """Returns when the client has disconnected (ASGI ``http.disconnect``)."""
    while True:
        message = await watch()
        if message.get("type") == "http.disconnect":
            return


__all__ = ["EMBED", "PREDICT", "ClientGone", "Service"]
