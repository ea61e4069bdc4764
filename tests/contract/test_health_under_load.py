"""Under a burst of writes, health says whether the instance is alive, and reads do not queue
behind the writes (deployments.api.write_gate)."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from deployments.api import write_gate
from deployments.runtime import calls


def embed(*ids: str) -> dict[str, list[dict[str, str]]]:
    return {"documents": [{"id": id_, "text": f"text of {id_}"} for id_ in ids]}


def test_a_deployment_slow_to_answer_is_busy_and_the_instance_healthy(client, monkeypatch):
    async def slow_info():
        await asyncio.sleep(5)

    monkeypatch.setattr(calls, "HEALTH_PROBE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(client.app.state.store, "info", slow_info)
    response = client.get("/healthz/")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok", body
    assert body["deployments"]["ChromaStore"]["status"] == "busy" and body["count"] is None


def test_a_deployment_that_is_not_there_makes_the_instance_degraded(client, monkeypatch):
    async def gone():
        raise calls._unavailable("ChromaStore", RuntimeError("replica died"))

    monkeypatch.setattr(client.app.state.store, "info", gone)
    response = client.get("/healthz/")
    assert response.status_code == 503 and response.json()["deployments"]["ChromaStore"]["status"] == "unavailable"


@pytest.fixture
def gated(make_client, monkeypatch):
    """A client whose writes block in the store until released, with room for one write in flight
    and one waiting."""
    monkeypatch.setattr(write_gate, "WRITES_IN_FLIGHT", 1)
    monkeypatch.setattr(write_gate, "WRITES_WAITING", 1)
    client = make_client(max_docs=20)
    release = threading.Event()
    store = client.app.state.store
    upsert = store.upsert

    async def held_upsert(*args):
        while not release.is_set():
            await asyncio.sleep(0.01)
        return await upsert(*args)

    monkeypatch.setattr(store, "upsert", held_upsert)
    with client:  # one event loop for every request, from every thread (as in the replica)
        yield client, release
    release.set()


def test_writes_past_the_gate_are_refused_at_once_and_reads_go_on(gated):
    client, release = gated
    release.set()
    assert client.post("/embed/", json=embed("seed")).status_code == 200
    release.clear()
    gate = client.app.state.service._writes
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/embed/", json=embed("first"))
        second = pool.submit(client.post, "/embed/", json=embed("second"))
        deadline = time.monotonic() + 30
        while not (gate._slots.locked() and gate._waiting == 1):  # one in flight, one waiting
            assert time.monotonic() < deadline and not first.done() and not second.done()
            time.sleep(0.01)
        refused = client.post("/embed/", json=embed("third"))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
        assert "writes are already waiting" in refused.json()["message"]
        # Reads meanwhile: answered at once, and they see the store as it was.
        assert client.post("/search/", json={"query": "seed", "top_k": 1}).json()["results"][0]["id"] == "seed"
        assert client.get("/healthz/").status_code == 200
        assert client.get("/count/").json()["count"] == 1
        release.set()
        assert first.result().status_code == second.result().status_code == 200
    assert client.get("/count/").json()["count"] == 3  # the refused write stored nothing


def test_a_write_the_gate_refuses_is_not_charged_to_the_plans_documents_per_second(gated, monkeypatch):
    """The plan's documents/s is charged only for writes let in or queued: a burst the gate turns
    away leaves the tenant's rate budget as it was."""
    client, release = gated
    limiter = client.app.state.service.rate_limiter
    charged: list[int] = []
    admit = limiter.admit_documents

    def counted(count, **options):
        charged.append(count)
        admit(count, **options)

    monkeypatch.setattr(limiter, "admit_documents", counted)
    gate = client.app.state.service._writes
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/embed/", json=embed("first"))
        second = pool.submit(client.post, "/embed/", json=embed("second", "third"))
        deadline = time.monotonic() + 30
        while not (gate._slots.locked() and gate._waiting == 1):
            assert time.monotonic() < deadline and not first.done() and not second.done()
            time.sleep(0.01)
        refused = client.post("/embed/", json=embed(*[f"refused-{n}" for n in range(5)]))
        assert refused.status_code == 503, refused.text
        release.set()
        assert first.result().status_code == second.result().status_code == 200
    assert sorted(charged) == [1, 2]  # the refused write's five documents were never charged
