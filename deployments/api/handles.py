"""Typed calls to the Embedder and ChromaStore deployments.

A Serve deployment handle is untyped (`handle.method.remote(...)` takes and returns anything), so
every call the Ingress makes goes through these classes: mypy checks each call against them,
tests/unit/test_handles.py holds them to the deployments' own method signatures, and each one says
once whether it is a read (abandoned past a timeout) or a write (awaited once handed over:
deployments.runtime.calls).
"""

from typing import Any

from deployments.core.errors import ServiceError
from deployments.core.types import Chunks, Document, Filter, Hit, Include, Metadata, Snapshot, StoreInfo, Vectors
from deployments.embedding.models import Embedded
from deployments.runtime.calls import HEALTH_PROBE_TIMEOUT_S, read, send
from deployments.storage.ranking import Query

EMBEDDER = "Embedder"
STORE = "ChromaStore"


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
    """The ChromaStore deployment (the same `handle` as EmbedderCalls takes)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        stored: dict[str, Vectors] = await read(STORE, self._handle.stored_vectors.remote(ids, texts))
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
        found: list[Document] = await read(STORE, self._handle.get.remote(ids, include))
        return found

    async def page(
        self, limit: int, offset: int, where: Filter | None, where_document: Filter | None, include: list[Include]
    ) -> tuple[list[Document], int | None]:
        found: tuple[list[Document], int | None] = await read(
            STORE, self._handle.page.remote(limit, offset, where, where_document, include)
        )
        return found

    async def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        found: list[list[Hit] | ServiceError] = await read(STORE, self._handle.search_many.remote(queries))
        return found

    async def count(self) -> int:
        count: int = await read(STORE, self._handle.count.remote())
        return count

    async def count_matching(self, where: Filter | None, where_document: Filter | None, most: int) -> int:
        count: int = await read(STORE, self._handle.count_matching.remote(where, where_document, most))
        return count

    async def update_metadata(self, ids: list[str], metadatas: list[Metadata]) -> int:
        updated: int = await send(STORE, self._handle.update_metadata, ids, metadatas)
        return updated

    async def delete(self, ids: list[str]) -> tuple[int, int]:
        deleted: tuple[int, int] = await send(STORE, self._handle.delete, ids)
        return deleted

    async def delete_where(self, where: Filter | None, where_document: Filter | None, most: int) -> tuple[int, int]:
        deleted: tuple[int, int] = await send(STORE, self._handle.delete_where, where, where_document, most)
        return deleted

    async def snapshot(self) -> Snapshot:
        taken: Snapshot = await send(STORE, self._handle.snapshot)
        return taken

    async def info(self) -> StoreInfo:
        """For a health probe: a short wait, then 503."""
        info: StoreInfo = await read(STORE, self._handle.info.remote(), HEALTH_PROBE_TIMEOUT_S)
        return info
