"""Per-plan size and rate limits (413, 422, 429) and overload (503): a clear message, nothing stored."""

import asyncio
import dataclasses
import time
import types

import pytest

from deployments.api import rate_limits
from deployments.core.plans import PLANS
from deployments.runtime import calls

TINY = dataclasses.replace(
    PLANS["starter"],
    name="tiny",
    max_metadata_bytes=64,
    max_body_bytes=2_000,
    requests_per_s=5,
    documents_per_s=6,
)


@pytest.fixture
def tiny(make_client, monkeypatch):
    monkeypatch.setitem(PLANS, "tiny", TINY)
    return make_client(plan="tiny", max_docs=100)


class Clock:
    """The rate limiter's clock (deployments.api.rate_limits reads time.monotonic()), moved
    only by the test: a slow machine must not let a window pass between two requests."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(rate_limits, "time", types.SimpleNamespace(monotonic=frozen.time))
    return frozen


def embed(*ids: str) -> dict[str, object]:
    return {"documents": [{"id": id_, "text": f"text of {id_}"} for id_ in ids]}


def count(client) -> int:
    return client.get("/healthz/").json()["count"]


def test_a_body_over_the_plan_limit_is_refused_with_413(tiny):
    response = tiny.post("/embed/", json={"documents": [{"text": "x" * 3_000}]})
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large" and "'tiny' allows 2000" in body["message"]
    assert count(tiny) == 0


def test_a_chunked_body_over_the_limit_is_refused_too(tiny):
    # A generator body goes out with Transfer-Encoding: chunked, without Content-Length.
    chunks = (b'{"documents": [{"text": "' + b"x" * 500, *([b"x" * 500] * 5), b'"}]}')
    response = tiny.post("/embed/", content=iter(chunks), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert count(tiny) == 0


def test_a_chunked_body_under_the_limit_is_served(tiny):
    chunks = (b'{"documents": [{"id": "c", ', b'"text": "chunked"}]}')
    response = tiny.post("/embed/", content=iter(chunks), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == ["c"]


def test_metadata_over_the_plan_limit_is_refused_with_its_field(tiny):
    response = tiny.post("/embed/", json={"documents": [{"id": "m", "text": "t", "metadata": {"note": "é" * 40}}]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "plan_limit_exceeded" and body["field"] == "documents.0.metadata"
    assert "bytes as JSON" in body["message"] and "allows 64" in body["message"]


def test_requests_over_the_plan_rate_get_429_with_retry_after(tiny, clock):
    statuses = [tiny.post("/search/", json={"query": "q"}).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
    refused = tiny.post("/delete/", json={"ids": ["a"]})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "rate_limited"
    # The health check is never rate limited: the platform's probes must always get through.
    assert tiny.get("/healthz/").status_code == 200
    clock.now += 1.05  # the window moves on
    assert tiny.post("/search/", json={"query": "q"}).status_code == 200


def test_documents_over_the_plan_rate_refuse_the_whole_request(tiny, clock):
    assert tiny.post("/embed/", json=embed("a", "b", "c", "d")).status_code == 200
    refused = tiny.post("/embed/", json=embed("e", "f", "g"))
    assert refused.status_code == 429 and refused.json()["field"] == "documents"
    assert "documents in one second" in refused.json()["message"]
    assert count(tiny) == 4  # nothing of the refused request was stored


def test_a_search_the_store_does_not_answer_in_time_is_a_503_not_a_hang(client, monkeypatch):
    async def stuck(queries):
        await asyncio.sleep(30)

    monkeypatch.setattr(calls, "READ_TIMEOUT_S", 0.2)
    monkeypatch.setattr(client.app.state.store, "search_many", stuck)
    started = time.monotonic()
    response = client.post("/search/", json={"query": "anything"})
    assert time.monotonic() - started < 5
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    body = response.json()
    assert body["error"] == "unavailable" and "did not answer within 0.2 s" in body["message"]
