"""The ChromaStore deployment: the single replica that owns the tenant's chromadb folder."""

import asyncio

from ray import serve

from deployments.backends import Vectors
from deployments.config import Settings
from deployments.errors import ServiceError
from deployments.tenant_store import Hit, Metadata, Query, TenantStore


# Exactly one replica, always: two processes on one chromadb folder hang or disagree.
@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
class ChromaStore:
    def __init__(self, settings: Settings) -> None:
        self.store = TenantStore(settings)

    # chromadb blocks; running it in threads keeps the replica's event loop answering.
    async def upsert(self, ids: list[str], texts: list[str], vectors: Vectors, metadatas: list[Metadata]) -> int:
        return await asyncio.to_thread(self.store.upsert, ids, texts, vectors, metadatas)

    async def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        return await asyncio.to_thread(self.store.stored_vectors, ids, texts)

    async def delete(self, ids: list[str]) -> tuple[int, int]:
        return await asyncio.to_thread(self.store.delete, ids)

    async def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        return await asyncio.to_thread(self.store.search_many, queries)

    async def count(self) -> int:
        return await asyncio.to_thread(self.store.count)
