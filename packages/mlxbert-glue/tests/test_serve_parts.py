"""The server's parts without HTTP: settings and --model parsing, the LRU cache, the batcher
(token budget, request cap, length grouping, waiting, queue limit, cancel, shutdown), input
shapes of /predict and the validation messages."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mlxbert_glue import serve
from mlxbert_glue.serve import ModelSpec, ServeConfigError, ServeSettings, parse_model_specs
from mlxbert_glue.serve.batcher import Batcher, Job, plan_forwards, plan_packed_forwards
from mlxbert_glue.serve.cache import LRUCache
from mlxbert_glue.serve.errors import QueueFullError, RequestError, ShuttingDownError
from mlxbert_glue.serve.responses import describe_validation
from mlxbert_glue.serve.routes import predict_inputs

from .conftest import TINY_BERT


def test_model_specs_names_and_duplicates(tmp_path):
    folder = tmp_path / "sst2"
    folder.mkdir()
    specs = parse_model_specs([str(folder), "emb=all-minilm-l6-v2", "org/model"])
    assert specs == [
        ModelSpec("sst2", str(folder)),
        ModelSpec("emb", "all-minilm-l6-v2"),
        ModelSpec("org/model", "org/model"),
    ]
    with pytest.raises(ServeConfigError, match="given twice"):
        parse_model_specs(["a=x", "a=y"])
    with pytest.raises(ServeConfigError, match="at least one --model"):
        parse_model_specs([])
    with pytest.raises(ServeConfigError, match="nothing to open"):
        parse_model_specs(["a="])


def test_settings_name_the_flag_that_is_wrong():
    assert ServeSettings().validate() == ServeSettings()
    with pytest.raises(ServeConfigError) as err:
        ServeSettings(port=70000, max_batch_requests=0, pooling="median").validate()
    message = str(err.value)
    for flag in ("--port 70000", "--max-batch-requests 0", "--pooling 'median'"):
        assert flag in message
    with pytest.raises(ServeConfigError, match="--max-queue 4: must hold at least one full"):
        ServeSettings(max_queue=4, max_client_batch_size=8).validate()


def test_lru_cache_evicts_least_recent_and_size_zero_is_off():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert (cache.hits, cache.misses) == (3, 0)
    assert cache.get("b", "none") == "none" and cache.misses == 1
    off = LRUCache(0)
    off.put("a", 1)
    assert off.get("a") is None and len(off) == 0 and not off.enabled


def test_predict_inputs_follow_text_embeddings_inference():
    assert predict_inputs("a") == ([("a", None)], True)
    assert predict_inputs(["a"]) == ([("a", None)], True)
    assert predict_inputs(["a", "b"]) == ([("a", "b")], True)
    assert predict_inputs([["a"], ["b", "c"]]) == ([("a", None), ("b", "c")], False)
    with pytest.raises(RequestError, match=r"send a batch as a list of lists") as err:
        predict_inputs(["a", "b", "c"])
    assert err.value.status == 422
    with pytest.raises(RequestError, match=r"`inputs\[1\]` holds 3 texts"):
        predict_inputs([["a"], ["b", "c", "d"]])


def test_validation_messages_say_what_to_send():
    status, kind, message = describe_validation(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 9),
                "msg": "",
                "ctx": {"error": "Expecting value"},
            }
        ],
        "{",
    )
    assert (status, kind) == (400, "invalid_json") and "character 9" in message
    errors = [
        {"type": "string_type", "loc": ("body", "inputs", "str"), "msg": "", "input": 5},
        {"type": "list_type", "loc": ("body", "inputs", "list[str]"), "msg": "", "input": 5},
    ]
    status, kind, message = describe_validation(errors, {"inputs": 5})
    assert (
        status == 422 and "`inputs` must be a text or a list of texts; got an integer 5" in message
    )
    _, _, message = describe_validation(
        [{"type": "extra_forbidden", "loc": ("body", "normalise"), "msg": "", "input": True}], {}
    )
    assert "`normalise` is not a field" in message


# ----------------------------------------------------------------------------- the batcher


class Recorder:
    """A runner that records each batch's texts (and can hold the worker until released)."""

    def __init__(self, hold: bool = False):
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, key, items):
        self.started.set()
        self.release.wait(10)
        self.batches.append([item.text for item in items])
        return [f"{key[0]}:{item.text}" for item in items]


def _job(loop, key, lengths, prefix="t"):
    job = Job(loop)
    for i, n in enumerate(lengths):
        job.add(key, f"{prefix}{i}-{n}", None, n)
    return job


def _batcher(runner, **kwargs):
    settings = {
        "max_batch_tokens": 1000,
        "max_batch_requests": 4,
        "max_wait_ms": 0,
        "max_queue": 100,
    }
    settings.update(kwargs)
    return Batcher(runner, **settings).start()


def test_forwards_are_sorted_runs_within_the_token_budget():
    # [5, 7] [9, 12] pads 38 tokens; [5, 7, 9] [12] would pad 39
    assert plan_forwards([30, 5, 12, 7, 200, 9], 40) == [[1, 3], [5, 2], [0], [4]]
    assert plan_forwards([8, 8, 8, 8], 32) == [[0, 1, 2, 3]]
    assert plan_forwards([], 32) == []


def test_a_batch_is_split_only_where_the_padding_saved_pays_for_a_forward():
    short, long = [4] * 8, [100] * 2
    # together: 10 x 100 padded tokens; apart: 8 x 4 + 2 x 100 and one more forward
    assert plan_forwards(short + long, 16384, forward_cost=64) == [list(range(8)), [8, 9]]
    assert plan_forwards(short + long, 16384, forward_cost=10_000) == [list(range(10))]
    similar = [20, 22, 21, 23, 24, 20]
    assert plan_forwards(similar, 16384) == [[0, 5, 2, 1, 3, 4]]


def test_batches_respect_the_request_cap_and_the_token_budget():
    async def main():
        loop = asyncio.get_running_loop()
        runner = Recorder(hold=True)
        batcher = _batcher(runner, max_batch_tokens=100, max_batch_requests=3)
        try:
            first = _job(loop, ("m", "embed"), [5], prefix="first")
            batcher.submit(first)
            await asyncio.to_thread(runner.started.wait, 5)  # the worker is busy with it
            job = _job(loop, ("m", "embed"), [10, 12, 11, 30, 40, 9, 50])
            batcher.submit(job)
            runner.release.set()
            assert await asyncio.wait_for(job.future, 10) == [f"m:{i.text}" for i in job.items]
        finally:
            batcher.close()
        return runner.batches

    batches = asyncio.run(main())
    assert batches[0] == ["first0-5"]
    for batch in batches[1:]:
        widths = [int(text.split("-")[1]) for text in batch]
        assert len(batch) <= 3 and max(widths) * len(batch) <= 100
    # the oldest input and the closest lengths are taken: (10, 11, 9), (12, 30, 40), (50);
    # each taken batch runs sorted by length in forwards of at most 100 padded tokens
    assert batches[1:] == [["t5-9", "t0-10", "t2-11"], ["t1-12"], ["t3-30", "t4-40"], ["t6-50"]]


def test_packed_forwards_keep_arrival_order_and_cut_only_at_the_token_budget():
    assert plan_packed_forwards([30, 5, 12, 7, 200, 9], 40) == [[0, 1], [2, 3], [4], [5]]
    assert plan_packed_forwards([4] * 8 + [100] * 2, 16384) == [list(range(10))]
    assert plan_packed_forwards([], 32) == []


def test_a_packing_model_takes_the_oldest_inputs_in_one_forward():
    stats = []

    async def main():
        loop = asyncio.get_running_loop()
        runner = Recorder(hold=True)
        batcher = _batcher(
            runner,
            max_batch_tokens=100,
            max_batch_requests=3,
            packed=lambda key: key[0] == "p",
            on_batch=stats.append,
        )
        try:
            batcher.submit(_job(loop, ("p", "embed"), [5], prefix="first"))
            await asyncio.to_thread(runner.started.wait, 5)
            job = _job(loop, ("p", "embed"), [10, 12, 11, 30, 40, 9, 50])
            batcher.submit(job)
            runner.release.set()
            await asyncio.wait_for(job.future, 10)
        finally:
            batcher.close()
        return runner.batches

    batches = asyncio.run(main())
    # arrival order, three at a time, one forward each while their own tokens fit in 100
    assert batches[1:] == [["t0-10", "t1-12", "t2-11"], ["t3-30", "t4-40", "t5-9"], ["t6-50"]]
    assert [s.tokens for s in stats[1:]] == [33, 79, 50]  # the real tokens, not padded ones


def test_only_compatible_inputs_share_a_forward():
    async def main():
        loop = asyncio.get_running_loop()
        runner = Recorder(hold=True)
        batcher = _batcher(runner)
        try:
            batcher.submit(_job(loop, ("m", "embed", True), [3], prefix="hold"))
            await asyncio.to_thread(runner.started.wait, 5)
            a = _job(loop, ("m", "embed", True), [3, 3], prefix="a")
            b = _job(loop, ("m", "embed", False), [3, 3], prefix="b")
            batcher.submit(a)
            batcher.submit(b)
            runner.release.set()
            await asyncio.wait_for(asyncio.gather(a.future, b.future), 10)
        finally:
            batcher.close()
        return runner.batches

    batches = asyncio.run(main())
    assert batches[1:] == [["a0-3", "a1-3"], ["b0-3", "b1-3"]]


def test_the_worker_waits_for_more_only_when_busy():
    async def main():
        loop = asyncio.get_running_loop()
        runner = Recorder()
        batcher = _batcher(runner, max_wait_ms=300, max_batch_requests=8)
        try:
            lone = _job(loop, ("m", "embed"), [4], prefix="lone")
            started = time.monotonic()
            batcher.submit(lone)
            await asyncio.wait_for(lone.future, 10)
            lone_time = time.monotonic() - started
            pair = _job(loop, ("m", "embed"), [4, 4], prefix="pair")
            batcher.submit(pair)  # two waiting: the worker waits up to 300 ms for more
            await asyncio.sleep(0.05)
            late = _job(loop, ("m", "embed"), [4], prefix="late")
            batcher.submit(late)
            await asyncio.wait_for(asyncio.gather(pair.future, late.future), 10)
        finally:
            batcher.close()
        return lone_time, runner.batches

    lone_time, batches = asyncio.run(main())
    assert lone_time < 0.25  # an idle server answers a lone request at once
    assert batches[1] == ["pair0-4", "pair1-4", "late0-4"]


def test_after_a_batch_the_worker_waits_for_its_clients_to_come_back():
    async def main():
        loop = asyncio.get_running_loop()
        runner = Recorder(hold=True)
        batcher = _batcher(runner, max_wait_ms=300, max_batch_requests=8)
        try:
            first = _job(loop, ("m", "embed"), [4, 4, 4, 4], prefix="first")
            batcher.submit(first)
            await asyncio.to_thread(runner.started.wait, 5)
            older = _job(loop, ("m", "embed"), [4, 4], prefix="older")
            batcher.submit(older)
            await asyncio.sleep(0.4)  # older than --max-wait-ms when the worker is free
            runner.release.set()
            await asyncio.wait_for(first.future, 10)
            back = _job(loop, ("m", "embed"), [4, 4], prefix="back")  # the answered return
            batcher.submit(back)
            await asyncio.wait_for(asyncio.gather(older.future, back.future), 10)
        finally:
            batcher.close()
        return runner.batches

    batches = asyncio.run(main())
    # two waited where four were answered: the worker waited for more, and got them
    assert batches[1:] == [["older0-4", "older1-4", "back0-4", "back1-4"]]


def test_queue_limit_cancel_and_shutdown():
    async def main():
        loop = asyncio.get_running_loop()
        runner = Recorder(hold=True)
        batcher = _batcher(runner, max_queue=3, max_batch_requests=1)
        busy = _job(loop, ("m", "embed"), [2], prefix="busy")
        batcher.submit(busy)
        await asyncio.to_thread(runner.started.wait, 5)
        waiting = _job(loop, ("m", "embed"), [2, 2])
        batcher.submit(waiting)
        with pytest.raises(QueueFullError) as full:
            batcher.submit(_job(loop, ("m", "embed"), [2, 2]))
        assert full.value.status == 503 and int(full.value.headers["Retry-After"]) >= 1
        assert batcher.cancel(waiting) == 2 and batcher.waiting == 0
        queued = _job(loop, ("m", "embed"), [2])
        batcher.submit(queued)
        runner.release.set()
        rejected = await asyncio.to_thread(batcher.close, 10)
        assert await asyncio.wait_for(busy.future, 5) == ["m:busy0-2"]  # its batch finished
        return rejected, queued

    rejected, queued = asyncio.run(main())
    assert rejected in (0, 1)
    if rejected:
        assert isinstance(queued.future.exception(), ShuttingDownError)


def test_a_failing_batch_fails_its_requests_only():
    calls = []

    def runner(key, items):
        calls.append(len(items))
        if items[0].text.startswith("bad"):
            raise RuntimeError("boom")
        return [item.text for item in items]

    async def main():
        loop = asyncio.get_running_loop()
        batcher = _batcher(runner)
        try:
            bad = _job(loop, ("m", "embed"), [2], prefix="bad")
            batcher.submit(bad)
            with pytest.raises(RequestError, match="RuntimeError: boom") as err:
                await asyncio.wait_for(bad.future, 5)
            assert err.value.status == 500
            good = _job(loop, ("m", "embed"), [2], prefix="good")
            batcher.submit(good)
            return await asyncio.wait_for(good.future, 5)
        finally:
            batcher.close()

    assert asyncio.run(main()) == ["good0-2"]


def test_without_the_extra_the_message_says_how_to_install(monkeypatch):
    import sys

    for name in ("server", "app", "routes", "metrics"):
        monkeypatch.delitem(sys.modules, f"mlxbert_glue.serve.{name}", raising=False)
        monkeypatch.delattr(serve, name, raising=False)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert not serve.available()
    with pytest.raises(serve.ServeUnavailableError, match=r'pip install "mlxbert-glue\[serve\]"'):
        serve.run([str(TINY_BERT)])
