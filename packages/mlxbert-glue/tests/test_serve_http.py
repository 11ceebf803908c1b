"""The real server on a loopback port, over HTTP: every route, the OpenAI shape, answers
equal to ``Classifier`` / ``embed``, batching of concurrent requests, the cache, and every
bad input with its status code while the server keeps serving.

One server (tiny models: a 3-class, a regression and a multilabel classifier, and the plain
tiny encoder as an embedder) is shared by the module."""

from __future__ import annotations

import base64
import json
import signal

import numpy as np
import pytest

from mlxbert_core import embed, from_pretrained, load_tokenizer
from mlxbert_glue import Classifier, create_model_and_tokenizer, save_task_model

from .conftest import TINY_BERT
from .serve_helpers import ServerProcess, in_threads

TEXTS = ["a quiet, moving film", "dull and far too long", "the cast is great", "meh"]
PAIRS = [["A cat sat.", "An animal sat."], ["It rains.", "The sun shines."]]
LONG = " ".join(["word"] * 80)  # over the classifiers' 32 tokens and the encoder's 64


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    out = {}
    model, tok, _ = create_model_and_tokenizer(TINY_BERT, "multiclass", labels=["a", "b", "c"])
    out["mc"] = save_task_model(model, tok, root / "mc", max_length=32)
    model, tok, _ = create_model_and_tokenizer(TINY_BERT, "regression")
    model.head.fit_scaler(np.array([100.0, 300.0, 500.0]))
    out["reg"] = save_task_model(model, tok, root / "reg", max_length=32)
    model, tok, _ = create_model_and_tokenizer(TINY_BERT, "multilabel", labels=["x", "y", "z"])
    model.head._load_fitted_state({"thresholds": [0.0, 2.0, 0.5]})  # x always, y never
    out["ml"] = save_task_model(model, tok, root / "ml", max_length=32)
    return out


@pytest.fixture(scope="module")
def server(folders):
    models = [f"{name}={path}" for name, path in folders.items()] + [f"emb={TINY_BERT}"]
    proc = ServerProcess.library(
        models,
        max_wait_ms=300,
        max_batch_requests=16,
        max_client_batch_size=8,
        max_queue=64,
        cache_size=64,
        payload_limit=4096,
    )
    yield proc
    code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.output()


def _close(served, local):
    assert served["label"] == local["label"]
    assert served["scores"].keys() == local["scores"].keys()
    for name, value in local["scores"].items():
        assert served["scores"][name] == pytest.approx(value, abs=1e-5)


# ----------------------------------------------------------------------------- routes


def test_health_info_and_openapi(server, folders):
    assert server.get("/health").json() == {"status": "ok"}
    info = server.get("/info").json()
    assert info["model_id"] == str(folders["mc"])
    assert info["model_type"]["classifier"]["id2label"] == {"0": "a", "1": "b", "2": "c"}
    assert info["device"] == "cpu" and info["model_dtype"] == "float32"
    assert info["max_client_batch_size"] == 8 and info["limits"]["cache_size"] == 64
    models = {m["name"]: m for m in info["models"]}
    assert set(models) == {"mc", "reg", "ml", "emb"}
    assert models["mc"]["labels"] == ["a", "b", "c"] and models["mc"]["max_length"] == 32
    assert models["reg"]["prediction"] == "value" and models["ml"]["prediction"] == "labels"
    assert models["emb"]["kind"] == "embedder" and models["emb"]["dimension"] == 64
    paths = server.get("/openapi.json").json()["paths"]
    assert {
        "/predict",
        "/embed",
        "/v1/embeddings",
        "/tokenize",
        "/health",
        "/info",
        "/metrics",
    } <= set(paths)
    assert server.get("/docs").status == 200


def test_predictions_equal_the_classifiers(server, folders):
    clf = Classifier.from_pretrained(folders["mc"])
    one = server.post("/predict", {"inputs": TEXTS[0]})
    assert one.status == 200, one
    _close(one.json(), clf.classify(TEXTS[0]))
    batch = server.post("/predict", {"inputs": [[t] for t in TEXTS]}).json()
    for served, local in zip(batch, clf.classify_batch(TEXTS)):
        _close(served, local)
    pair = server.post("/predict", {"inputs": PAIRS[0]}).json()
    _close(pair, clf.classify_pair(*PAIRS[0]))
    pairs = server.post("/predict", {"inputs": PAIRS}).json()
    for served, local in zip(pairs, clf.classify_batch([tuple(p) for p in PAIRS])):
        _close(served, local)


def test_regression_values_and_multilabel_thresholds(server, folders):
    reg = Classifier.from_pretrained(folders["reg"])
    served = server.post("/predict", {"inputs": [[t] for t in TEXTS], "model": "reg"}).json()
    for got, want in zip(served, reg.classify_batch(TEXTS)):
        assert got["value"] == pytest.approx(want["value"], rel=1e-5)
    ml = server.post("/predict", {"inputs": TEXTS[1], "model": "ml"}).json()
    assert "x" in ml["labels"] and "y" not in ml["labels"]
    assert ml["labels"] == Classifier.from_pretrained(folders["ml"]).classify(TEXTS[1])["labels"]


def test_embeddings_equal_embed_and_the_openai_shape(server):
    encoder, tokenizer = from_pretrained(TINY_BERT), load_tokenizer(TINY_BERT)
    want = embed(encoder, tokenizer, TEXTS)
    got = np.array(server.post("/embed", {"inputs": TEXTS, "model": "emb"}).json())
    np.testing.assert_allclose(got, want, atol=1e-5)
    raw = np.array(
        server.post("/embed", {"inputs": TEXTS[0], "model": "emb", "normalize": False}).json()
    )
    np.testing.assert_allclose(
        raw[0], embed(encoder, tokenizer, TEXTS[:1], normalize=False)[0], atol=1e-5
    )
    # a classifier's encoder embeds too
    assert np.array(server.post("/embed", {"inputs": TEXTS[0]}).json()).shape == (1, 64)

    reply = server.post("/v1/embeddings", {"input": TEXTS, "model": "emb"})
    assert reply.status == 200, reply
    body = reply.json()
    assert body["object"] == "list" and body["model"] == "emb"
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in body["data"])
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], want, atol=1e-5)
    tokens = sum(
        len(ids) for ids in tokenizer(TEXTS, padding=False, return_tensors=None)["input_ids"]
    )
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    b64 = server.post(
        "/v1/embeddings", {"input": TEXTS[0], "model": "emb", "encoding_format": "base64"}
    )
    vector = np.frombuffer(base64.b64decode(b64.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, want[0], atol=1e-5)


def test_tokenize_gives_ids_and_spans(server):
    tokens = server.post("/tokenize", {"inputs": ["the cast"], "model": "emb"}).json()[0]
    tokenizer = load_tokenizer(TINY_BERT)
    assert [t["id"] for t in tokens] == tokenizer.encode("the cast")
    assert tokens[0]["special"] and tokens[0]["start"] is None
    words = [t for t in tokens if not t["special"]]
    assert "".join(t["text"] for t in words) == "thecast"
    assert all("the cast"[t["start"] : t["stop"]] == t["text"] for t in words)


# ----------------------------------------------------------------------------- batching, cache


def test_concurrent_requests_share_forwards(server):
    texts = [f"request number {i} says hello" for i in range(16)]

    def forwards():
        return server.metric('mlxbert_batch_size_count{model="mc",op="predict"}')

    before = forwards()
    replies = in_threads([lambda t=t: server.post("/predict", {"inputs": t}) for t in texts])
    assert all(r.status == 200 for r in replies), replies
    used = forwards() - before
    assert used < len(texts), f"{len(texts)} requests took {used} forwards"
    metrics = server.metrics()
    assert (
        metrics['mlxbert_batch_size_sum{model="mc",op="predict"}']
        / metrics['mlxbert_batch_size_count{model="mc",op="predict"}']
        > 1
    )


def test_the_cache_answers_repeated_inputs(server):
    body = {"inputs": [["cached one"], ["cached two"]]}
    hits = server.metric("mlxbert_cache_hits_total")
    first = server.post("/predict", body).json()
    assert server.metric("mlxbert_cache_hits_total") == hits
    again = server.post("/predict", body).json()
    assert again == first
    assert server.metric("mlxbert_cache_hits_total") == hits + 2
    assert server.metric("mlxbert_cache_entries") >= 2


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "kind", "fragment"),
    [
        ("/predict", {"raw": b'{"inputs": '}, 400, "invalid_json", "not valid JSON"),
        ("/predict", {"raw": b""}, 422, "validation", "the body is empty"),
        ("/predict", {"body": {"inputs": 5}}, 422, "validation", "`inputs` must be a text"),
        ("/predict", {"body": {"inputs": "x", "truncate": "yes"}}, 422, "validation", "`truncate`"),
        (
            "/predict",
            {"body": {"inputs": "x", "normalise": True}},
            422,
            "validation",
            "`normalise` is not",
        ),
        ("/predict", {"body": {"texts": "x"}}, 422, "validation", "`inputs` is required"),
        ("/predict", {"body": {"inputs": []}}, 422, "empty", "`inputs` is empty"),
        ("/predict", {"body": {"inputs": ["a", "b", "c"]}}, 422, "validation", "list of lists"),
        ("/predict", {"body": {"inputs": [["t"]] * 9}}, 413, "too_many_inputs", "at most 8"),
        ("/predict", {"body": {"inputs": LONG}}, 413, "too_long", "at most 32"),
        (
            "/predict",
            {"body": {"inputs": "x", "model": "nope"}},
            404,
            "unknown_model",
            "'mc', 'reg'",
        ),
        ("/predict", {"body": {"inputs": "x", "model": "emb"}}, 400, "not_a_classifier", "/embed"),
        ("/embed", {"body": {"inputs": [LONG], "model": "emb"}}, 413, "too_long", "at most 64"),
        (
            "/embed",
            {"raw": b"inputs=x", "headers": {"Content-Type": "text/plain"}},
            422,
            "validation",
            "Content-Type: application/json",
        ),
        (
            "/predict",
            {"raw": b'{"inputs": "' + b"x" * 5000 + b'"}'},
            413,
            "payload_too_large",
            "at most 4096",
        ),
        ("/nowhere", {"body": {}}, 404, "not_found", "the routes are"),
    ],
)
def test_bad_input_gets_its_status_and_a_message(server, path, kwargs, status, kind, fragment):
    reply = server.post(path, kwargs.pop("body", None), **kwargs)
    assert reply.status == status, reply
    body = reply.json()
    assert body["error_type"] == kind and fragment in body["error"], body
    assert server.get("/health").status == 200


def test_openai_errors_have_openais_shape(server):
    reply = server.post("/v1/embeddings", {"input": "x", "model": "nope"})
    assert reply.status == 404
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_model"
    assert error["param"] == "model" and "served models" in error["message"]
    reply = server.post("/v1/embeddings", {"input": "x", "model": "emb", "dimensions": 8})
    assert reply.status == 400 and "64-dimensional" in reply.json()["error"]["message"]
    reply = server.post("/v1/embeddings", {"input": [1, 2], "model": "emb"})
    assert reply.status == 422


def test_truncation_on_request_and_the_server_still_serves(server, folders):
    assert server.post("/predict", {"inputs": LONG}).status == 413
    reply = server.post("/predict", {"inputs": LONG, "truncate": True})
    assert reply.status == 200, reply
    _close(reply.json(), Classifier.from_pretrained(folders["mc"]).classify(LONG))
    reply = server.post("/embed", {"inputs": LONG, "truncate": True, "model": "emb"})
    assert reply.status == 200
    errors = server.metrics()
    assert errors['mlxbert_errors_total{kind="too_long",route="predict"}'] >= 1
    assert server.post("/predict", {"inputs": "still here"}).status == 200
    assert json.loads(server.get("/health").body) == {"status": "ok"}
