"""POST /v1/embeddings: OpenAI's request and response shapes, its error envelope for every refusal on
the path (route, validation, middleware), the plan's limits, and vectors equal to what /embed/ stores.
Also through the official `openai` client, in-process."""

import base64
import dataclasses
import json
import time
import types

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient

from deployments.api import rate_limits
from deployments.core.errors import ServiceUnavailable
from deployments.core.plans import PLANS

KEY = "openai-key-0123456789abcdef"
READ_ONLY = "openai-read-only-0123456789"
MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew by 12 percent.", "A dog slept by the fire."]

# chromadb keeps its own copy of a vector, normalised again for its cosine index: /get/ may give it
# back one float32 step (3e-8) from the model's; "equal" is to within that.
SAME = 1e-6

TINY = dataclasses.replace(PLANS["starter"], name="tiny", max_body_bytes=2_000, requests_per_s=5, documents_per_s=6)


def embeddings(client: TestClient, **body: object):
    return client.post("/v1/embeddings", json={"model": MODEL, **body})


def openai_error(response, status: int, code: str, param: str | None = None) -> str:
    """Check the answer is OpenAI's error envelope, nothing else; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == code and body["error"]["param"] == param, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


def stored_vectors(client: TestClient, texts: list[str]) -> list[list[float]]:
    ids = [f"doc-{i}" for i in range(len(texts))]
    documents = [{"id": id_, "text": text} for id_, text in zip(ids, texts, strict=True)]
    assert client.post("/embed/", json={"documents": documents}).status_code == 200
    found = client.post("/get/", json={"ids": ids, "include": ["embedding"]}).json()["documents"]
    return [document["embedding"] for document in found]


def test_a_list_of_texts_gets_openai_s_response(client):
    response = embeddings(client, input=TEXTS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == MODEL
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    for item in body["data"]:
        assert set(item) == {"object", "index", "embedding"} and item["object"] == "embedding"
        assert len(item["embedding"]) == 384 and all(isinstance(x, float) for x in item["embedding"])
        assert np.linalg.norm(item["embedding"]) == pytest.approx(1.0, abs=1e-5)
    # Counted by the model's tokenizer (here the fake embedder's: words).
    tokens = sum(client.app.state.embedder.backend.token_counts(TEXTS))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_a_single_string_is_one_input(client):
    body = embeddings(client, input="pets resting on rugs").json()
    assert len(body["data"]) == 1 and body["data"][0]["index"] == 0
    assert body["usage"]["prompt_tokens"] == 4


def test_vectors_equal_the_ones_embed_stores_and_nothing_is_stored(client):
    served = [item["embedding"] for item in embeddings(client, input=TEXTS).json()["data"]]
    # The Embedder's document lane, which makes the vectors /embed/ stores; the store is not called.
    assert client.app.state.handles["Embedder"].called == ["embed"]
    assert client.app.state.handles["ChromaStore"].called == []
    assert served == client.app.state.embedder.backend.encode(TEXTS).tolist()
    np.testing.assert_allclose(served, stored_vectors(client, TEXTS), rtol=0, atol=SAME)
    assert client.get("/count/").json()["count"] == len(TEXTS)  # those /embed/ stored, no more


def test_a_text_past_the_window_is_embedded_from_its_start_as_embed_does(client):
    long = " ".join(f"word{i}" for i in range(300))  # the fake model's window is 256 tokens
    body = embeddings(client, input=[long]).json()
    assert body["usage"]["prompt_tokens"] == 256  # what the model read
    np.testing.assert_allclose(body["data"][0]["embedding"], stored_vectors(client, [long])[0], rtol=0, atol=SAME)


def test_base64_is_the_little_endian_float32_bytes_of_the_same_vectors(client):
    as_floats = embeddings(client, input=TEXTS).json()["data"]
    as_base64 = embeddings(client, input=TEXTS, encoding_format="base64").json()["data"]
    for number, packed in zip(as_floats, as_base64, strict=True):
        assert isinstance(packed["embedding"], str)
        decoded = np.frombuffer(base64.b64decode(packed["embedding"]), dtype="<f4")
        assert decoded.tolist() == number["embedding"]


@pytest.mark.parametrize("name", [MODEL, "sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"])
def test_the_bundled_model_answers_to_the_names_model_name_takes(client, name):
    response = client.post("/v1/embeddings", json={"model": name, "input": "x"})
    assert response.status_code == 200 and response.json()["model"] == MODEL


def test_another_model_is_refused_naming_the_one_served(client):
    message = openai_error(
        embeddings(client, input="x", model="text-embedding-3-small"), 422, "validation_error", "model"
    )
    assert "'text-embedding-3-small'" in message and f"'{MODEL}'" in message
    assert client.app.state.embedder.encoded == []  # refused before the model ran


def test_dimensions_may_only_be_the_model_s_own(client):
    assert embeddings(client, input="x", dimensions=384).status_code == 200
    message = openai_error(embeddings(client, input="x", dimensions=256), 422, "validation_error", "dimensions")
    assert "384" in message


def test_user_is_accepted_and_ignored(client):
    assert embeddings(client, input="x", user="user-1234").status_code == 200


BAD_BODIES = {
    "empty text": ({"input": ""}, "input"),
    "blank text": ({"input": "   "}, "input"),
    "no texts": ({"input": []}, "input"),
    "an empty text among others": ({"input": ["ok", ""]}, "input"),
    "token ids": ({"input": [1, 2, 3]}, "input"),
    "lists of token ids": ({"input": [[1, 2], [3]]}, "input"),
    "a number among texts": ({"input": ["ok", 3]}, "input"),
    "a boolean": ({"input": True}, "input"),
    "null": ({"input": None}, "input"),
    "an object": ({"input": {"text": "x"}}, "input"),
    "a lone surrogate": ({"input": "\ud800"}, "input"),
    "no input": ({}, "input"),
    "no model": ({"model": None, "input": "x"}, "model"),
    "an unknown encoding": ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    "dimensions as a string": ({"input": "x", "dimensions": "384"}, "dimensions"),
    "dimensions as a boolean": ({"input": "x", "dimensions": True}, "dimensions"),
    "dimensions as a decimal": ({"input": "x", "dimensions": 384.0}, "dimensions"),
    "an unknown field": ({"input": "x", "input_type": "query"}, "input_type"),
    "user as a number": ({"input": "x", "user": 7}, "user"),
}


@pytest.mark.parametrize(("body", "param"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_body_is_a_422_in_openai_s_envelope(client, body, param):
    body = {"model": MODEL, **body}
    if body["model"] is None:
        del body["model"]
    # Sent as ASCII JSON: a lone surrogate is only JSON's escape of it (httpx would encode it as UTF-8).
    content = json.dumps(body).encode()
    response = TestClient(client.app, raise_server_exceptions=False).post(
        "/v1/embeddings", content=content, headers={"Content-Type": "application/json"}
    )
    openai_error(response, 422, "validation_error", param)
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.app.state.embedder.encoded == []


def test_token_ids_are_refused_with_a_reason(client):
    message = openai_error(embeddings(client, input=[[15339, 1917]]), 422, "validation_error", "input")
    assert "token ids are not accepted" in message


@pytest.mark.parametrize(
    ("content", "code", "param"),
    [(b'{"model": "x", "input": ', "invalid_json", None), (b'["not", "an object"]', "validation_error", "body")],
)
def test_a_body_that_is_not_a_json_object_is_refused_in_openai_s_envelope(client, content, code, param):
    response = client.post("/v1/embeddings", content=content, headers={"Content-Type": "application/json"})
    openai_error(response, 400 if code == "invalid_json" else 422, code, param)


def test_more_inputs_or_longer_texts_than_the_plan_allows_are_refused(client):
    # starter: 256 documents per request, 10,000 characters per text
    message = openai_error(embeddings(client, input=["x"] * 257), 422, "plan_limit_exceeded", "input")
    assert "257 inputs" in message and "allows 256" in message
    assert embeddings(client, input=["x"] * 256).status_code == 200
    message = openai_error(embeddings(client, input=["ok", "y" * 10_001]), 422, "plan_limit_exceeded", "input")
    assert "input[1] has 10001 characters" in message


def test_the_trailing_slash_is_served_too_and_only_the_bare_path_is_documented(client):
    assert client.post("/v1/embeddings/", json={"model": MODEL, "input": "x"}).status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/embeddings" in paths and "/v1/embeddings/" not in paths
    operation = paths["/v1/embeddings"]["post"]
    assert "curl" in operation["description"]
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OpenAIErrorResponse"
    )


def test_other_paths_under_v1_answer_in_openai_s_envelope_and_the_rest_keeps_its_own(client):
    openai_error(client.get("/v1/models"), 404, "not_found")
    openai_error(client.get("/v1/embeddings"), 405, "method_not_allowed")
    elsewhere = client.post("/search/", json={"query": ""})
    assert elsewhere.status_code == 422 and elsewhere.json()["error"] == "validation_error"


# ---- behind the same key, rates and body limit as every route ----------------------------------


@pytest.fixture
def locked(make_client):
    return make_client(api_key=KEY, api_key_readonly=READ_ONLY)


def test_the_key_is_needed_and_its_refusal_is_in_openai_s_envelope(locked):
    missing = embeddings(locked, input="x")
    assert openai_error(missing, 401, "unauthorized", "Authorization").startswith("missing API key")
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = locked.post("/v1/embeddings", json={"model": MODEL, "input": "x"}, headers={"Authorization": "Bearer nope"})
    openai_error(wrong, 401, "unauthorized", "Authorization")
    assert KEY not in missing.text + wrong.text
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
        assert locked.post("/v1/embeddings", json={"model": MODEL, "input": "x"}, headers=headers).status_code == 200


def test_a_read_only_key_does_not_open_it(locked):
    refused = locked.post("/v1/embeddings", json={"model": MODEL, "input": "x"}, headers={"X-API-Key": READ_ONLY})
    assert "/v1/embeddings" in openai_error(refused, 403, "read_only_key", "Authorization")
    assert refused.json()["error"]["type"] == "permission_error"


class Clock:
    """The rate limiter's clock, moved only by the test (as in test_limits.py)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def tiny(make_client, monkeypatch):
    monkeypatch.setitem(PLANS, "tiny", TINY)
    monkeypatch.setattr(rate_limits, "time", types.SimpleNamespace(monotonic=Clock().time))
    return make_client(plan="tiny", max_docs=100)


def test_each_input_counts_against_the_documents_rate(tiny):
    assert embeddings(tiny, input=["a", "b", "c", "d"]).status_code == 200
    refused = embeddings(tiny, input=["e", "f", "g"])
    assert "documents in one second" in openai_error(refused, 429, "rate_limited", "input")
    assert refused.headers["retry-after"] == "1" and refused.json()["error"]["type"] == "rate_limit_error"


def test_the_request_rate_refusal_by_the_middleware_is_in_openai_s_envelope(tiny):
    assert [embeddings(tiny, input="a").status_code for _ in range(5)] == [200] * 5  # 5 of 6 documents
    refused = embeddings(tiny, input="a")
    assert "requests in one second" in openai_error(refused, 429, "rate_limited")
    assert refused.headers["retry-after"] == "1"


def test_a_body_over_the_plan_limit_is_a_413_in_openai_s_envelope(tiny):
    response = embeddings(tiny, input="x" * 3_000)
    assert "'tiny' allows 2000" in openai_error(response, 413, "payload_too_large", "body")


# ---- the deployments' failures ------------------------------------------------------------------


def test_an_unavailable_embedder_is_a_503_in_openai_s_envelope(client, monkeypatch):
    async def restarting(texts):
        raise ServiceUnavailable("the Embedder is restarting; retry shortly")

    monkeypatch.setattr(client.app.state.embedder, "embed", restarting)
    response = embeddings(client, input="x")
    openai_error(response, 503, "unavailable")
    assert response.headers["retry-after"] == "1" and response.json()["error"]["type"] == "server_error"


def test_a_fault_of_ours_is_a_500_in_openai_s_envelope(client, monkeypatch):
    async def broken(texts):
        raise RuntimeError("a bug")

    monkeypatch.setattr(client.app.state.embedder, "embed", broken)
    response = TestClient(client.app, raise_server_exceptions=False).post(
        "/v1/embeddings", json={"model": MODEL, "input": "x"}
    )
    assert "RuntimeError" in openai_error(response, 500, "internal_error")


# ---- the official openai client, in-process -----------------------------------------------------


@pytest.fixture
def openai_client(locked):
    # The TestClient is an httpx.Client whose transport is the app itself.
    return openai.OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=locked, max_retries=0)


def test_the_openai_client_gets_the_vectors_embed_stores(openai_client, locked):
    # Without encoding_format the client asks for base64 and decodes it itself.
    response = openai_client.embeddings.create(model=MODEL, input=TEXTS)
    assert [item.index for item in response.data] == [0, 1, 2] and response.model == MODEL
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    as_floats = openai_client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    assert [item.embedding for item in response.data] == [item.embedding for item in as_floats.data]
    locked.headers["Authorization"] = f"Bearer {KEY}"
    np.testing.assert_allclose([item.embedding for item in response.data], stored_vectors(locked, TEXTS), atol=SAME)


def test_the_openai_client_raises_its_own_errors_with_our_message(openai_client, locked):
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert refused.value.code == "validation_error" and refused.value.param == "model"
    assert refused.value.type == "invalid_request_error"
    assert isinstance(refused.value.body, dict) and MODEL in refused.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        openai_client.embeddings.create(model=MODEL, input=[])
    unkeyed = openai.OpenAI(base_url="http://testserver/v1", api_key="wrong", http_client=locked, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        unkeyed.embeddings.create(model=MODEL, input="x")
    assert unauthorized.value.code == "unauthorized"
