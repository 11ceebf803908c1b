"""Dynamic batching: inputs queue on arrival; one model worker takes batches.

Each request becomes a :class:`Job` of :class:`Item` s (one per text or pair, already
tokenized, so its token count is known). The worker is the only thread that runs MLX
(:meth:`Batcher.run_here` makes the calling thread the worker; :meth:`Batcher.start` starts
a thread of its own). When it is free it takes a batch: the oldest waiting item and up to
``max_batch_requests - 1`` compatible items (same model, operation and options) of the
closest lengths. It computes the batch sorted by length, cut into forwards where that saves
more padding than a forward costs (:func:`plan_forwards`), each within ``max_batch_tokens``
padded tokens (inputs x longest input; an input longer than that runs alone), so that short
and long inputs taken together are not all padded to the longest. For a model that packs
its batches (computes the real tokens only, ``packed(key)``), padding costs next to nothing:
the worker takes the oldest waiting items, in arrival order, and cuts them only where their
own tokens would pass ``max_batch_tokens`` (:func:`plan_packed_forwards`). When
fewer than ``max_batch_requests`` items (and less than one full forward) wait, it first
waits up to ``max_wait_ms`` after the oldest item's arrival for more - or, when fewer wait
than the last batch answered, after that batch's answers went out (its clients are likely
to send again at once) - unless the server was idle (the last batch had one input and one
input is waiting), so that a lone request is answered at once.

Results go back to the event loop with one ``call_soon_threadsafe`` per batch. A job that is
cancelled (timeout, client gone, shutdown) has its waiting items removed from the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ModelFailedError, QueueFullError, RequestError, ShuttingDownError

log = logging.getLogger("mlxbert.serve")

#: (model name, operation, options...): only items with equal keys share a forward.
BatchKey = tuple[Hashable, ...]


@dataclass(eq=False)
class Item:
    """One input of a job: a text (and the second text of a pair) and its token count."""

    key: BatchKey
    text: str
    pair: str | None
    tokens: int
    job: Job
    slot: int
    arrived: float = 0.0


class Job:
    """The inputs of one request; ``future`` (on the event loop) gets their results in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.future: asyncio.Future[list[Any]] = loop.create_future()
        self.items: list[Item] = []
        self.results: list[Any] = []
        self.remaining = 0

    def add(self, key: BatchKey, text: str, pair: str | None, tokens: int) -> Item:
        item = Item(key, text, pair, tokens, self, len(self.items))
        self.items.append(item)
        self.results.append(None)
        self.remaining += 1
        return item

    # on the event loop
    def _deliver(self, item: Item, value: Any) -> None:
        if self.future.done():
            return
        self.results[item.slot] = value
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.results)

    def _fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def _deliver_batch(batch: Sequence[Item], values: Sequence[Any] | None, error: Any) -> None:
    for index, item in enumerate(batch):
        if error is not None:
            item.job._fail(error)
        else:
            item.job._deliver(item, values[index])  # type: ignore[index]


@dataclass
class BatchStats:
    """What the worker reports after each forward (for metrics): its inputs, the tokens it
    computed (inputs x longest; for a packed forward the inputs' own tokens) and its time."""

    key: BatchKey
    size: int
    tokens: int
    seconds: float
    failed: bool = False


#: What one more forward costs, in padded tokens: a forward's fixed work (building MLX's
#: graph in Python, small matrix products) against the work of one token, estimated from
#: MiniLM forward timings on a small CPU (docs/BENCHMARKS.md, Serving: fewer, fuller
#: forwards were slower). Splitting a batch pays when it saves more padding than this.
FORWARD_COST_TOKENS = 64


def plan_forwards(
    lengths: Sequence[int], max_tokens: int, forward_cost: float = FORWARD_COST_TOKENS
) -> list[list[int]]:
    """A batch's forwards: its inputs sorted by length and cut into runs that minimise the
    padded tokens (inputs x longest of each run) plus ``forward_cost`` per run, each run
    within ``max_tokens`` padded tokens (an input longer than that runs alone). Returns
    index lists, shortest inputs first."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    width = np.array([lengths[i] for i in order], dtype=np.float64)
    count = len(order)
    best = np.zeros(count + 1)
    cut = np.zeros(count + 1, dtype=np.int64)
    for end in range(1, count + 1):
        # runs order[start:end], longest last: padded size (end - start) * width[end - 1]
        widest = width[end - 1]
        fits = max(1, int(max_tokens // widest)) if widest > 0 else end
        starts = np.arange(max(0, end - fits), end)
        costs = best[starts] + forward_cost + (end - starts) * widest
        pick = int(np.argmin(costs))
        best[end], cut[end] = costs[pick], starts[pick]
    forwards: list[list[int]] = []
    end = count
    while end > 0:
        start = int(cut[end])
        forwards.append(order[start:end])
        end = start
    return forwards[::-1]


def plan_packed_forwards(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """A packed model's forwards: the inputs in the given (arrival) order, cut only where
    the next input would take a forward past ``max_tokens`` of its inputs' own tokens (an
    input longer than that runs alone)."""
    forwards: list[list[int]] = []
    total = 0
    for index, length in enumerate(lengths):
        if forwards and total + length <= max_tokens:
            forwards[-1].append(index)
            total += length
        else:
            forwards.append([index])
            total = length
    return forwards


class Batcher:
    """The queue and its one worker thread.

    ``runner(key, items)`` computes one forward on the worker thread and returns one result
    per item; ``packed(key)`` says whether that model packs its batches (module docstring).
    ``on_take(key, inputs taken)``, ``on_batch(stats of a forward)``,
    ``on_depth(waiting)`` and ``on_busy(inputs in the forward now running)`` report to
    metrics.
    """

    def __init__(
        self,
        runner: Callable[[BatchKey, list[Item]], Sequence[Any]],
        *,
        max_batch_tokens: int,
        max_batch_requests: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        on_busy: Callable[[int], None] | None = None,
        on_take: Callable[[BatchKey, int], None] | None = None,
        packed: Callable[[BatchKey], bool] | None = None,
    ):
        self._runner = runner
        self._packed = packed or (lambda key: False)
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_batch_requests = int(max_batch_requests)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._on_busy = on_busy
        self._on_take = on_take
        self._cond = threading.Condition()
        self._queue: list[Item] = []
        self._closing = False
        self._running = False
        self._last_size = 0
        self._last_done = 0.0  # when the last batch's answers went out (monotonic)
        self._rate = 0.0  # inputs per second of recent forwards (for Retry-After)
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------------
    def start(self) -> Batcher:
        """Run the worker on a thread of its own."""
        self._thread = threading.Thread(target=self.run_here, name="mlxbert-serve-model")
        self._thread.daemon = True
        self._thread.start()
        return self

    def run_here(self) -> None:
        """Be the worker in the calling thread until :meth:`close`."""
        self._running = True
        try:
            self._work()
        finally:
            self._running = False

    @property
    def alive(self) -> bool:
        return self._running and not self._closing

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def reject_waiting(self, error: RequestError | None = None) -> int:
        """Fail every job with an input still waiting (default: 503, shutting down); the
        batch being computed finishes. Returns how many waiting inputs were dropped."""
        with self._cond:
            rejected = self._queue
            self._queue = []
            self._report_depth()
            self._cond.notify_all()
        self._reject(rejected, error or ShuttingDownError())
        return len(rejected)

    def close(self, timeout: float | None = None) -> int:
        """Stop taking work, reject what still waits (503) and let the worker finish its
        current batch. Returns how many waiting inputs were rejected."""
        with self._cond:
            self._closing = True
        rejected = self.reject_waiting()
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            thread.join(timeout)
        return rejected

    # -- from the event loop ----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue all items of ``job`` (all or none: a full queue raises QueueFullError)."""
        with self._cond:
            if self._closing:
                raise ShuttingDownError()
            if len(self._queue) + len(job.items) > self.max_queue:
                raise QueueFullError(len(self._queue), self.max_queue, self._retry_after())
            now = time.monotonic()
            for item in job.items:
                item.arrived = now
            self._queue.extend(job.items)
            self._report_depth()
            self._cond.notify()

    def cancel(self, job: Job) -> int:
        """Remove the job's items that still wait; returns how many were removed."""
        with self._cond:
            before = len(self._queue)
            self._queue = [item for item in self._queue if item.job is not job]
            removed = before - len(self._queue)
            if removed:
                self._report_depth()
                self._cond.notify()
        return removed

    # -- the worker -------------------------------------------------------------------------
    def _retry_after(self) -> int:
        if self._rate <= 0:
            return 1
        return max(1, min(60, math.ceil(len(self._queue) / self._rate)))

    def _report_depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._queue))

    def _compatible(self) -> tuple[int, int]:
        """How many waiting items share the oldest item's key, and their token sum."""
        key = self._queue[0].key
        count = tokens = 0
        for item in self._queue:
            if item.key == key:
                count += 1
                tokens += item.tokens
        return count, tokens

    def _wait_for_more(self) -> None:
        if self.max_wait <= 0 or self.max_batch_requests == 1:
            return
        if self._last_size <= 1 and len(self._queue) <= 1:
            return  # idle: answer a lone request at once
        while self._queue and not self._closing:
            count, tokens = self._compatible()
            if count >= self.max_batch_requests or tokens >= self.max_batch_tokens:
                return
            since = self._queue[0].arrived
            if count < self._last_size:
                # Fewer wait than were just answered: those clients are likely to send again
                # within moments. Taking only the waiting ones would settle into forwards of
                # fractions of the clients, alternating, each paying a forward's fixed cost.
                since = max(since, self._last_done)
            remaining = since + self.max_wait - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _take(self) -> list[Item]:
        """The next batch (the lock is held): the oldest item and up to
        ``max_batch_requests - 1`` compatible items of the closest lengths (for a packed
        model, the next oldest)."""
        oldest = self._queue[0]
        anchor = oldest.tokens
        candidates = [item for item in self._queue if item.key == oldest.key]
        if not self._packed(oldest.key):
            candidates.sort(key=lambda item: (abs(item.tokens - anchor), item.arrived))
        chosen = candidates[: self.max_batch_requests]
        taken = set(map(id, chosen))
        self._queue = [item for item in self._queue if id(item) not in taken]
        self._report_depth()
        return chosen

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait(0.5)  # wakes now and then, so the main thread sees signals
                if self._closing and not self._queue:
                    return
                self._wait_for_more()
                batch = self._take() if self._queue else []
            if batch:
                self._run(batch)

    def _run(self, batch: list[Item]) -> None:
        """Compute a batch forward by forward (see :func:`plan_forwards`); each forward's
        results go back as soon as it is done."""
        self._last_size = len(batch)
        if self._on_take is not None:
            self._on_take(batch[0].key, len(batch))
        lengths = [item.tokens for item in batch]
        packed = self._packed(batch[0].key)
        if packed:
            plan = plan_packed_forwards(lengths, self.max_batch_tokens)
        else:
            plan = plan_forwards(lengths, self.max_batch_tokens)
        for chunk in plan:
            self._forward([batch[i] for i in chunk], packed)
        self._last_done = time.monotonic()

    def _forward(self, items: list[Item], packed: bool = False) -> None:
        if self._on_busy is not None:
            self._on_busy(len(items))
        started = time.perf_counter()
        values: Sequence[Any] | None = None
        error: RequestError | None = None
        try:
            values = self._runner(items[0].key, items)
            if len(values) != len(items):
                raise RuntimeError(f"{len(values)} results for {len(items)} inputs")
        except Exception as exc:
            log.exception("the model failed on a forward of %d inputs", len(items))
            error = ModelFailedError(f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        if error is None and seconds > 0:
            rate = len(items) / seconds
            self._rate = rate if self._rate <= 0 else 0.8 * self._rate + 0.2 * rate
        self._send(items, values, error)
        if self._on_busy is not None:
            self._on_busy(0)
        if self._on_batch is not None:
            lengths = [item.tokens for item in items]
            tokens = sum(lengths) if packed else max(lengths) * len(items)
            self._on_batch(BatchStats(items[0].key, len(items), tokens, seconds, error is not None))

    @staticmethod
    def _send(batch: Sequence[Item], values: Sequence[Any] | None, error: Any) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[int]] = {}
        for index, item in enumerate(batch):
            by_loop.setdefault(item.job.loop, []).append(index)
        for loop, indices in by_loop.items():
            items = [batch[i] for i in indices]
            part = None if values is None else [values[i] for i in indices]
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_deliver_batch, items, part, error)

    def _reject(self, items: Sequence[Item], error: RequestError) -> None:
        self._send(items, None, error)


__all__ = [
    "FORWARD_COST_TOKENS",
    "BatchKey",
    "BatchStats",
    "Batcher",
    "Item",
    "Job",
    "plan_forwards",
    "plan_packed_forwards",
]
