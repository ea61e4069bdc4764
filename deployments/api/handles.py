"""Typed calls to the Embedder and ChromaStore deployments.

A Serve deployment handle is untyped (`handle.method.remote(...)` takes and returns anything), so
every call the Ingress makes goes through these classes: mypy checks each call against them,
tests/unit/test_handles.py holds them to the deployments' own method signatures, and each one says
once whether it is a read (abandoned past a timeout; the store's reads go over its same-host read
channel where there is one: deployments.runtime.read_channel) or a write (awaited once handed over:
deployments.runtime.calls).
"""

import asyncio
import logging
import time
from typing import Any

from deployments.core.errors import ServiceError
from deployments.core.types import Chunks, Document, Filter, Hit, Include, Metadata, Snapshot, StoreInfo, Vectors
from deployments.embedding.models import Embedded
from deployments.runtime import metrics
from deployments.runtime.calls import HEALTH_PROBE_TIMEOUT_S, read, send
from deployments.runtime.read_channel import Channel, ChannelBroken
from deployments.storage.ranking import Query

EMBEDDER = "Embedder"
STORE = "ChromaStore"
# The store's methods its read channel serves (deployments.runtime.read_channel): the reads below.
CHANNEL_READS = frozenset({"stored_vectors", "get", "page", "search_many", "count", "count_matching"})
# How often the Ingress asks the store for its read channel while it has none (at start, after the
# store replica was replaced, or always where the store runs on another host).
CHANNEL_RETRY_S = 5.0

logger = logging.getLogger("ray.serve")


class EmbedderCalls:
    """The Embedder deployment. `handle`: its DeploymentHandle, or an in-process stand-in with the
    same `.method.remote(...)` shape (tests/fakes.py)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def embed(self, texts: list[str]) -> Embedded:
        embedded: Embedded = await send(EMBEDDER, self._handle.embed, texts, writes=False)
        return embedded

    async def embed_queries(self, texts: list[str]) -> Vectors:
        """The query lane: a QueryEncoder (deployments.embedding.query_encoders)."""
        vectors: Vectors = await read(EMBEDDER, self._handle.embed_queries.remote(texts))
        return vectors

    async def info(self) -> dict[str, Any]:
        """For a health probe: a short wait, then 503."""
        info: dict[str, Any] = await read(EMBEDDER, self._handle.info.remote(), HEALTH_PROBE_TIMEOUT_S)
        return info


class StoreCalls:
    """The ChromaStore deployment (the same `handle` as EmbedderCalls takes). With `channel`, reads
    go over the store's same-host read channel once it is open (deployments.runtime.read_channel),
    and over Serve until then, wherever it cannot be opened, and whenever it breaks."""

    def __init__(self, handle: Any, channel: bool = False) -> None:
        self._handle = handle
        self._use_channel = channel
        self._channel: Channel | None = None
        self._opening: asyncio.Task[None] | None = None
        self._next_open = 0.0  # monotonic time of the next attempt to open the channel

    async def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        stored: dict[str, Vectors] = await self._read("stored_vectors", ids, texts)
        return stored

    async def upsert(
        self,
        ids: list[str],
        texts: list[str],
        vectors: Vectors,
        metadatas: list[Metadata],
        supplied: list[bool],
        chunks: list[Chunks | None],
    ) -> int:
        count: int = await send(STORE, self._handle.upsert, ids, texts, vectors, metadatas, supplied, chunks)
        return count

    async def get(self, ids: list[str], include: list[Include]) -> list[Document]:
        found: list[Document] = await self._read("get", ids, include)
        return found

    async def page(
        self, limit: int, offset: int, where: Filter | None, where_document: Filter | None, include: list[Include]
    ) -> tuple[list[Document], int | None]:
        found: tuple[list[Document], int | None] = await self._read(
            "page", limit, offset, where, where_document, include
        )
        return found

    async def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        found: list[list[Hit] | ServiceError] = await self._read("search_many", queries)
        return found

    async def count(self) -> int:
        count: int = await self._read("count")
        return count

    async def count_matching(self, where: Filter | None, where_document: Filter | None, most: int) -> int:
        count: int = await self._read("count_matching", where, where_document, most)
        return count

    async def update_metadata(self, ids: list[str], metadatas: list[Metadata]) -> int:
        updated: int = await send(STORE, self._handle.update_metadata, ids, metadatas)
        return updated

    async def delete(self, ids: list[str]) -> tuple[int, int]:
        deleted: tuple[int, int] = await send(STORE, self._handle.delete, ids)
        return deleted

    async def delete_where(
        self, where: Filter | None, where_document: Filter | None, most: int, expected: int
    ) -> tuple[int, int]:
        deleted: tuple[int, int] = await send(STORE, self._handle.delete_where, where, where_document, most, expected)
        return deleted

    async def snapshot(self) -> Snapshot:
        taken: Snapshot = await send(STORE, self._handle.snapshot)
        return taken

    async def info(self) -> StoreInfo:
        """For a health probe: a short wait, then 503. Always over Serve: a probe checks what Serve sees."""
        info: StoreInfo = await read(STORE, self._handle.info.remote(), HEALTH_PROBE_TIMEOUT_S)
        return info

    async def _read(self, method: str, *args: Any) -> Any:
        channel = self._open_channel()
        if channel is not None:
            try:
                answer = await read(STORE, channel.call(method, *args))
            except ChannelBroken:  # the replica went: ask the next one for its channel, and read over Serve
                self._channel, self._next_open = None, 0.0
                self._open_channel()
            else:
                metrics.store_reads.inc(tags={"path": "channel"})
                return answer
        answer = await read(STORE, getattr(self._handle, method).remote(*args))
        metrics.store_reads.inc(tags={"path": "serve"})
        return answer

    def _open_channel(self) -> Channel | None:
        """The open channel; else None, having started to open one if it is time to try. No read
        waits for the channel to open: until then reads go over Serve."""
        if not self._use_channel:
            return None
        if self._channel is not None and not self._channel.broken:
            return self._channel
        if self._opening is None and time.monotonic() >= self._next_open:
            self._next_open = time.monotonic() + CHANNEL_RETRY_S
            self._opening = asyncio.get_running_loop().create_task(self._open())
        return None

    async def _open(self) -> None:
        try:
            path: str = await read(STORE, self._handle.read_channel.remote(), HEALTH_PROBE_TIMEOUT_S)
            self._channel = await Channel.connect(path)
            logger.info("reads of the %s now go over its read channel %s", STORE, path)
        except Exception as exc:  # the store is restarting, or runs on another host: reads go over Serve
            logger.debug("no read channel to the %s yet (%s: %s)", STORE, type(exc).__name__, exc)
        finally:
            self._opening = None
