"""Concurrent searches share store calls (deployments.runtime.lanes, used by TenantService): each
still gets exactly the answer it gets alone, whatever its mode, filter and top_k, and a search
whose filter the store refuses fails alone. The store is held busy by the test, not by timing."""

import asyncio
from typing import Any, cast

from ray.serve import Deployment

from deployments.api import service as service_module
from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.api.schemas import EmbedRequest, SearchRequest
from deployments.api.service import TenantService
from deployments.core.errors import ServiceError
from deployments.store import ChromaStore
from tests.fakes import FakeEmbedder, LocalHandle

DOCUMENTS = [
    {"id": "cats", "text": "Cats sleep on warm mats all afternoon.", "metadata": {"kind": "pets"}},
    {"id": "dogs", "text": "Dogs chase balls in the park.", "metadata": {"kind": "pets"}},
    {"id": "tax", "text": "Quarterly tax filings are due in April.", "metadata": {"kind": "finance"}},
]
SEARCHES: list[dict[str, Any]] = [
    {"query": "cats on mats"},
    {"query": "dogs in the park", "top_k": 1},
    {"query": "april tax", "where": {"kind": "finance"}},
    {"query": "chase", "mode": "keyword"},
    {"query": "warm afternoon", "mode": "hybrid", "top_k": 2},
    # A regex past the engine's compiled-size limit: refused by chromadb only as the search runs.
    {"query": "anything", "where_document": {"$regex": "(a{1000}){1000}"}},
]


def test_concurrent_searches_share_store_calls_and_each_gets_its_own_answer(make_settings, monkeypatch):
    # One store call in flight at a time, so that the sharing is certain.
    monkeypatch.setattr(service_module, "STORE_SEARCH_CALLS_IN_FLIGHT", 1)
    settings = make_settings()
    embedder = FakeEmbedder()
    store = cast(Any, cast(Deployment, ChromaStore).func_or_class)(settings, LocalHandle(embedder))
    service = TenantService(
        settings, EmbedderCalls(LocalHandle(embedder)), StoreCalls(LocalHandle(store)), embedder.backend
    )
    calls: list[int] = []
    search_many = store.search_many

    async def counted(queries: list[Any]) -> Any:
        calls.append(len(queries))
        await held.wait()
        return await search_many(queries)

    async def answer(body: dict[str, Any]) -> Any:
        try:
            return [(hit.id, round(hit.score, 6)) for hit in (await service.search(SearchRequest(**body))).results]
        except ServiceError as exc:
            return type(exc).__name__

    async def scenario() -> tuple[list[Any], list[Any]]:
        await service.embed(EmbedRequest(documents=DOCUMENTS))
        alone = [await answer(body) for body in SEARCHES]
        store.search_many = counted
        first = asyncio.create_task(answer({"query": "first"}))  # holds the store's only free slot ...
        for _ in range(5):
            await asyncio.sleep(0)
        together = asyncio.gather(*(answer(body) for body in SEARCHES))  # ... so these wait, and share
        for _ in range(5):
            await asyncio.sleep(0)
        held.set()
        await first
        return alone, await together

    held = asyncio.Event()
    alone, together = asyncio.run(scenario())
    assert together == alone
    assert alone[-1] == "InvalidFilter" and all(isinstance(result, list) for result in alone[:-1])
    assert calls == [1, len(SEARCHES)]
