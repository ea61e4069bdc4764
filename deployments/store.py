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

from deployments.api.handles import CHANNEL_READS, EmbedderCalls
from deployments.core.config import Settings
from deployments.core.errors import ServiceError
from deployments.core.types import Chunks, Document, Filter, Hit, Include, Metadata, Snapshot, StoreInfo, Vectors
from deployments.embedding.models import MAX_TEXTS_PER_CALL
from deployments.runtime.heap import trim_heap_when_quiet
from deployments.runtime.lanes import Lane
from deployments.runtime.read_channel import ChannelServer
from deployments.storage.ranking import Query
from deployments.storage.snapshot import snapshot_path
from deployments.storage.tenant_store import Delete, TenantStore, Upsert, raised

T = TypeVar("T")

# A write still running after this long is stuck, not slow (the largest plan's request takes a few
# seconds): chromadb can hang in a write after the disk failed one. The health check then fails
# and Serve replaces the replica; the stuck call's caller gets a 503, nothing half-written.
WRITE_STALL_S = 120.0
# A rebuild restores this many records at a time (one chromadb write, under the write lock),
# re-embedding those without a kept vector MAX_TEXTS_PER_CALL at a time. chromadb holds the GIL
# for a whole write, so nothing else in this replica runs meanwhile, health probes and searches
# included: 1,000 records held it 0.5 s on a 5,000-record index on an idle machine and past the
# 2 s probe timeout on a busy one (a CI failure); 250 hold it a quarter as long.
REBUILD_BATCH = 250
REBUILD_RETRY_S = 2.0
# Threads for reads (searches, lookups, counts), apart from the one writer: chromadb serves reads
# while a write runs, so a search never waits for a queue of imports to drain.
READ_THREADS = 4
# Imports (and deletes) that arrive while a write runs are written together next, this many
# requests at most (TenantStore.upsert_many, delete_many: a write's fixed cost is shared). The Ingress
# lets 16 writes through at once.
REQUESTS_A_WRITE = 32
# Well inside the Ingress's health probe timeout (runtime.calls.HEALTH_PROBE_TIMEOUT_S, 2 s).
COUNT_WAIT_S = 1.0

logger = logging.getLogger("ray.serve")


# Exactly one replica, always: two processes on one chromadb folder hang or disagree. Its shape is
# serve_config*.yaml's alone; tests/unit/test_packaging.py holds every shipped config to one replica.
@serve.deployment
class ChromaStore:
    def __init__(self, settings: Settings, embedder: Any) -> None:
        """`embedder`: a handle to the Embedder, used only to rebuild a broken index."""
        # The Ingress's reads skip Serve's call where it can (deployments.runtime.read_channel). First,
        # so that __del__ finds it even when the rest of __init__ failed.
        self._channel = ChannelServer(self, CHANNEL_READS)
        self.settings = settings
        self.store = TenantStore(settings)
        self._embedder = EmbedderCalls(embedder)
        # Writes are serialised by the store anyway (its write lock): one thread runs them, in order,
        # and reads have threads of their own.
        self._writer = ThreadPoolExecutor(1, "store-write")
        self._readers = ThreadPoolExecutor(READ_THREADS, "store-read")
        self._upserts: Lane[Upsert, int | Exception] = Lane(self._upsert_many, slots=1, most=REQUESTS_A_WRITE)
        self._deletes: Lane[Delete, tuple[int, int] | Exception] = Lane(
            self._delete_many, slots=1, most=REQUESTS_A_WRITE
        )
        self._write_started: float | None = None  # when the running write began, if one runs
        self.index: dict[str, Any] = {"state": "rebuilding" if self.store.rebuild.pending else "ready"}
        trim_heap_when_quiet()  # what chromadb's writes left free in the heap (runtime.heap)
        if self.store.rebuild.pending or self.store.rebuild.upgrading:
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
        return raised((await self._upserts([Upsert(ids, texts, vectors, metadatas, supplied, chunks)]))[0])

    async def _upsert_many(self, requests: list[Upsert]) -> list[int | Exception]:
        return await self._write(lambda: self.store.upsert_many(requests))

    async def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        return await self._read(self.store.stored_vectors, ids, texts)

    async def get(self, ids: list[str], include: list[Include]) -> list[Document]:
        return await self._read(self.store.get, ids, include)

    async def delete(self, ids: list[str]) -> tuple[int, int]:
        return raised((await self._deletes([Delete(ids)]))[0])

    async def _delete_many(self, requests: list[Delete]) -> list[tuple[int, int] | Exception]:
        return await self._write(lambda: self.store.delete_many(requests))

    async def delete_where(
        self, where: Filter | None, where_document: Filter | None, most: int, expected: int
    ) -> tuple[int, int]:
        """`expected`: how many documents the filters matched when the Ingress counted them (tenant_store.Delete)."""
        request = Delete(where=where, where_document=where_document, most=most, expected=expected)
        return raised((await self._deletes([request]))[0])

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

    async def read_channel(self) -> str:
        """The Unix socket on which this replica serves CHANNEL_READS too."""
        return await self._channel.open()

    def __del__(self) -> None:
        """Serve calls this when it stops the replica, after the requests it sent have finished:
        the channel's callers then send their reads over Serve, to the next replica."""
        self._channel.close()

    async def snapshot(self) -> Snapshot:
        destination = snapshot_path(self.settings)
        manifest = await self._write(partial(self.store.snapshot, destination), watched=False)
        return Snapshot(**manifest, path=str(destination))

    async def info(self) -> StoreInfo:
        """The index state always (it is in memory, and during a rebuild it is what a probe is
        for); the count if chromadb gives it within COUNT_WAIT_S: a count waits behind a running
        write (a rebuild's takes a second or more), and a probe must not lose the state for it."""
        try:
            count: int | None = await asyncio.wait_for(self.count(), COUNT_WAIT_S)
        except TimeoutError:
            count = None
        return {"count": count, "index": dict(self.index), "volume": self.store.volume()}

    async def rebuild_index(self) -> None:
        """Give every stored record (documents, then chunks of long ones) its vector again after a
        broken index was moved aside, from its kept copy (storage.kept_vectors), or where it has
        none by re-embedding its text (the model is deterministic: that is the vector that was
        lost). The same walk keeps a copy of every indexed vector of a folder from before kept
        copies (data format 1). Resumable: batches whose vectors are all indexed are skipped."""
        rebuild = self.store.rebuild
        work = {name: await self._read(rebuild.ids, name) for name in rebuild.collections}
        total = sum(len(ids) for ids in work.values())
        progress = {"checked": 0, "total": total, "restored": 0, "re_embedded": 0}
        if rebuild.pending:
            self.index = {"state": "rebuilding", **progress}
            logger.warning("rebuilding the vector index of %d records (documents and chunks)", total)
        if rebuild.upgrading:
            logger.warning("data format 1: keeping a copy of the vectors of %d records (documents and chunks)", total)
        for collection, ids in work.items():
            for start in range(0, len(ids), REBUILD_BATCH):
                batch = ids[start : start + REBUILD_BATCH]
                found, texts, kept = await self._read(rebuild.texts_without_vectors, batch, collection)
                if found:
                    vectors = await self._vectors_for(texts, kept)
                    restore = partial(rebuild.restore_vectors, found, texts, vectors, collection)
                    progress["restored"] += await self._write(restore)
                    progress["re_embedded"] += sum(vector is None for vector in kept)
                elif rebuild.upgrading:
                    await self._write(partial(rebuild.keep_indexed, batch, collection))
                progress["checked"] += len(batch)
                if self.index["state"] == "rebuilding":
                    self.index.update(progress)
        await self._write(rebuild.finish)
        logger.warning(
            "vector index ready: %d of %d records restored, %d of them re-embedded (no kept vector)",
            progress["restored"],
            total,
            progress["re_embedded"],
        )
        self.index = {"state": "ready", "rebuilt": progress["restored"], "re_embedded": progress["re_embedded"]}

    async def _vectors_for(self, texts: list[str], kept: list[Vectors | None]) -> Vectors:
        """The kept vector where there is one, else the model's (MAX_TEXTS_PER_CALL texts a call)."""
        to_embed = [row for row, vector in enumerate(kept) if vector is None]
        made: dict[int, Vectors] = {}
        for first in range(0, len(to_embed), MAX_TEXTS_PER_CALL):
            rows = to_embed[first : first + MAX_TEXTS_PER_CALL]
            made.update(zip(rows, await self._embed_patiently([texts[row] for row in rows]), strict=True))
        return np.stack([made[row] if vector is None else vector for row, vector in enumerate(kept)])

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
