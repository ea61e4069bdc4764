"""The ChromaStore deployment: the single replica that owns the tenant's chromadb folder."""

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import numpy as np
from ray import serve

from deployments.api.handles import EmbedderCalls
from deployments.core.config import Settings
from deployments.core.errors import ServiceError
from deployments.core.types import Chunks, Document, Filter, Hit, Include, Metadata, Snapshot, StoreInfo, Vectors
from deployments.embedding.models import MAX_TEXTS_PER_CALL
from deployments.storage.ranking import Query
from deployments.storage.snapshot import snapshot_path
from deployments.storage.tenant_store import TenantStore

T = TypeVar("T")

# A write still running after this long is stuck, not slow (the largest plan's request takes a few
# seconds): chromadb can hang in a write after the disk failed one. The health check then fails
# and Serve replaces the replica; the stuck call's caller gets a 503, nothing half-written.
WRITE_STALL_S = 120.0
# A rebuild re-embeds stored texts this many at a time (one Embedder call, one chromadb write).
REBUILD_BATCH = MAX_TEXTS_PER_CALL
REBUILD_RETRY_S = 2.0
# Threads for reads (searches, lookups, counts), apart from the one writer: chromadb serves reads
# while a write runs, so a search never waits for a queue of imports to drain.
READ_THREADS = 4

logger = logging.getLogger("ray.serve")


# Exactly one replica, always: two processes on one chromadb folder hang or disagree. Its shape is
# serve_config*.yaml's alone; tests/unit/test_packaging.py holds every shipped config to one replica.
@serve.deployment
class ChromaStore:
    def __init__(self, settings: Settings, embedder: Any) -> None:
        """`embedder`: a handle to the Embedder, used only to rebuild a broken index."""
        self.settings = settings
        self.store = TenantStore(settings)
        self._embedder = EmbedderCalls(embedder)
        # Writes are serialised by the store anyway (its write lock): one thread runs them, in order,
        # and reads have threads of their own.
        self._writer = ThreadPoolExecutor(1, "store-write")
        self._readers = ThreadPoolExecutor(READ_THREADS, "store-read")
        self._write_started: float | None = None  # when the running write began, if one runs
        self.index: dict[str, Any] = {"state": "rebuilding" if self.store.rebuild.pending else "ready"}
        if self.store.rebuild.pending:
            # In the background: the replica serves (texts, metadata, counts, writes) meanwhile.
            self._rebuild = asyncio.get_running_loop().create_task(self.rebuild_index())

    # chromadb blocks; running it in threads keeps the replica's event loop answering.
    async def upsert(
        self,
        ids: list[str],
        texts: list[str],
        vectors: Vectors,
        metadatas: list[Metadata],
        supplied: list[bool],
        chunks: list[Chunks | None],
    ) -> int:
        return await self._write(lambda: self.store.upsert(ids, texts, vectors, metadatas, supplied, chunks))

    async def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        return await self._read(self.store.stored_vectors, ids, texts)

    async def get(self, ids: list[str], include: list[Include]) -> list[Document]:
        return await self._read(self.store.get, ids, include)

    async def delete(self, ids: list[str]) -> tuple[int, int]:
        return await self._write(lambda: self.store.delete(ids))

    async def delete_where(self, where: Filter | None, where_document: Filter | None, most: int) -> tuple[int, int]:
        return await self._write(lambda: self.store.delete_where(where, where_document, most))

    async def count_matching(self, where: Filter | None, where_document: Filter | None, most: int) -> int:
        return await self._read(self.store.count_matching, where, where_document, most)

    async def update_metadata(self, ids: list[str], metadatas: list[Metadata]) -> int:
        return await self._write(lambda: self.store.update_metadata(ids, metadatas))

    async def page(
        self, limit: int, offset: int, where: Filter | None, where_document: Filter | None, include: list[Include]
    ) -> tuple[list[Document], int | None]:
        return await self._read(self.store.page, limit, offset, where, where_document, include)

    async def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        return await self._read(self.store.search.many, queries)

    async def count(self) -> int:
        return await self._read(self.store.count)

    async def snapshot(self) -> Snapshot:
        destination = snapshot_path(self.settings)
        manifest = await self._write(partial(self.store.snapshot, destination), watched=False)
        return Snapshot(**manifest, path=str(destination))

    async def info(self) -> StoreInfo:
        return {"count": await self.count(), "index": dict(self.index)}

    async def rebuild_index(self) -> None:
        """Give every stored text (documents, then chunks of long ones) its vector again after a
        broken index was moved aside: the model is deterministic, so re-embedding a text gives the
        vector that was lost. Resumable: batches whose vectors are all indexed are skipped."""
        work = {name: await self._read(self.store.rebuild.ids, name) for name in self.store.rebuild.collections}
        total = sum(len(ids) for ids in work.values())
        self.index = {"state": "rebuilding", "checked": 0, "total": total, "re_embedded": 0}
        logger.warning("rebuilding the vector index of %d records (documents and chunks)", total)
        for collection, ids in work.items():
            for start in range(0, len(ids), REBUILD_BATCH):
                batch = ids[start : start + REBUILD_BATCH]
                found, texts, supplied = await self._read(self.store.rebuild.texts_without_vectors, batch, collection)
                if found:
                    vectors = await self._vectors_for(texts, supplied)
                    restore = partial(self.store.rebuild.restore_vectors, found, texts, vectors, collection)
                    self.index["re_embedded"] += await self._write(restore)
                self.index["checked"] += len(batch)
        await self._write(self.store.rebuild.finish)
        logger.warning("vector index rebuilt: %d records re-embedded", self.index["re_embedded"])
        self.index = {"state": "ready", "rebuilt": self.index["re_embedded"]}

    async def _vectors_for(self, texts: list[str], supplied: list[Vectors | None]) -> Vectors:
        """The tenant's own vector where they supplied one (it cannot be re-made), else the model's."""
        to_embed = [row for row, vector in enumerate(supplied) if vector is None]
        embedded = await self._embed_patiently([texts[row] for row in to_embed]) if to_embed else None
        rows = dict(zip(to_embed, embedded if embedded is not None else [], strict=True))
        return np.stack([rows[row] if vector is None else vector for row, vector in enumerate(supplied)])

    async def _embed_patiently(self, texts: list[str]) -> Vectors:
        """The Embedder may still be starting or be replaced meanwhile: wait for it, never give up
        (the rebuild marker stays on disk, so even a restart does not lose the work)."""
        while True:
            try:
                return (await self._embedder.embed(texts)).vectors
            except Exception as exc:  # any failure of the call is retried; the texts stay stored
                logger.warning("index rebuild: the Embedder failed (%s); retrying", exc)
                await asyncio.sleep(REBUILD_RETRY_S)

    def check_health(self) -> None:
        """Serve calls this every few seconds; raising makes it replace the replica."""
        if self._write_started is not None:
            running_s = time.monotonic() - self._write_started
            if running_s > WRITE_STALL_S:
                raise RuntimeError(f"a write has been running for {running_s:.0f} s: chromadb is stuck")

    async def _read(self, read: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, read, *args)

    async def _write(self, write: Callable[[], T], watched: bool = True) -> T:
        """Run `write` on the writer thread, after the writes queued before it; `watched`, it counts
        as stuck past WRITE_STALL_S (a snapshot of a big tenant may rightly take longer)."""

        def timed() -> T:
            self._write_started = time.monotonic() if watched else None  # from when it runs, not queued
            try:
                return write()
            finally:
                self._write_started = None

        return await asyncio.get_running_loop().run_in_executor(self._writer, timed)
