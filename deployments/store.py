"""The ChromaStore deployment: the single replica that owns the tenant's chromadb folder."""

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ray import serve

from deployments.backends import Vectors
from deployments.config import Settings
from deployments.errors import ServiceError
from deployments.tenant_store import Hit, Metadata, Query, TenantStore

T = TypeVar("T")

# A write still running after this long is stuck, not slow (the largest plan's request takes a few
# seconds): chromadb can hang in a write after the disk failed one. The health check then fails
# and Serve replaces the replica; the stuck call's caller gets a 503, nothing half-written.
WRITE_STALL_S = 120.0


# Exactly one replica, always: two processes on one chromadb folder hang or disagree.
@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
class ChromaStore:
    def __init__(self, settings: Settings) -> None:
        self.store = TenantStore(settings)
        self._writes_started: dict[object, float] = {}  # running writes and when each began

    # chromadb blocks; running it in threads keeps the replica's event loop answering.
    async def upsert(self, ids: list[str], texts: list[str], vectors: Vectors, metadatas: list[Metadata]) -> int:
        return await self._write(lambda: self.store.upsert(ids, texts, vectors, metadatas))

    async def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        return await asyncio.to_thread(self.store.stored_vectors, ids, texts)

    async def get(self, ids: list[str], include: list[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.get, ids, include)

    async def delete(self, ids: list[str]) -> tuple[int, int]:
        return await self._write(lambda: self.store.delete(ids))

    async def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        return await asyncio.to_thread(self.store.search_many, queries)

    async def count(self) -> int:
        return await asyncio.to_thread(self.store.count)

    def check_health(self) -> None:
        """Serve calls this every few seconds; raising makes it replace the replica."""
        if self._writes_started:
            running_s = time.monotonic() - min(self._writes_started.values())
            if running_s > WRITE_STALL_S:
                raise RuntimeError(f"a write has been running for {running_s:.0f} s: chromadb is stuck")

    async def _write(self, write: Callable[[], T]) -> T:
        token = object()
        self._writes_started[token] = time.monotonic()
        try:
            return await asyncio.to_thread(write)
        finally:
            del self._writes_started[token]
