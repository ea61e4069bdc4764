"""Exact semantic search for small collections: every stored vector is scored (recall 1.0) where
chromadb's HNSW index would answer approximately.

Measured in-process on this machine (2026-12-05, random unit vectors of 384 floats, top 10 with
texts and metadata): scoring every vector with numpy and reading the ten records took 0.9 ms at
1,000 records, 2.1 at 4,000 and 2.6 at 8,000; chromadb's HNSW query took 1.3, 2.1 and 4.6 ms. So up
to EXACT_SEARCH_MAX records an exact answer costs no more than an approximate one. The vectors are
held in memory (1.5 KB a record), read from chromadb at the first search (about 250 ms at 4,000
records) and then kept in step by the collection's own writes, which all pass through this class:
the ChromaStore replica is the folder's only writer.
"""

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from chromadb.api.models.Collection import Collection
from chromadb.api.types import DeleteResult, Include, QueryResult, maybe_cast_one_to_many
from chromadb.errors import InternalError

from deployments.core.types import Vectors

EXACT_SEARCH_MAX = 5_000


def _unit(vectors: Any) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix = matrix.reshape(-1, matrix.shape[-1])
    unit: Vectors = matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-30, None)
    return unit


class ExactWhenSmall(Collection):
    """A chromadb collection whose `query` by vectors is exact while it holds at most `most`
    records, and chromadb's own (HNSW) above that, or while its vectors cannot be read (a broken
    index being rebuilt). Its other methods are chromadb's."""

    def __init__(self, collection: Collection, most: int = EXACT_SEARCH_MAX) -> None:
        super().__init__(collection._client, collection._model, None, collection._data_loader)
        self._most = most
        self._lock = threading.Lock()
        self._generation = 0  # every change of vectors bumps it: a read of all vectors that overlapped one is stale
        self._held: dict[str, Vectors] | None = None  # id -> unit vector, once read (and while small)
        self._small = True  # False once it held more than `most`, until a delete
        self._matrix: tuple[list[str], Vectors] | None = None  # `_held` stacked, made again after a change

    def query(
        self,
        query_embeddings: Any = None,
        query_texts: Any = None,
        query_images: Any = None,
        query_uris: Any = None,
        ids: Any = None,
        n_results: int = 10,
        where: Any = None,
        where_document: Any = None,
        include: Include = ["metadatas", "documents", "distances"],  # noqa: B006 (chromadb's default)
    ) -> QueryResult:
        by_vector_only = query_embeddings is not None and not (query_texts or query_images or query_uris or ids)
        held = self._vectors() if by_vector_only else None
        if held is None:
            return super().query(
                query_embeddings, query_texts, query_images, query_uris, ids, n_results, where, where_document, include
            )
        return self._exact(held, _unit(query_embeddings), n_results, where, where_document, include)

    def add(self, ids: Any, embeddings: Any = None, *args: Any, **kwargs: Any) -> None:
        with self._changing():
            super().add(ids, embeddings, *args, **kwargs)
        self._wrote(ids, embeddings)

    def upsert(self, ids: Any, embeddings: Any = None, *args: Any, **kwargs: Any) -> None:
        with self._changing():
            super().upsert(ids, embeddings, *args, **kwargs)
        self._wrote(ids, embeddings)

    def update(self, ids: Any, embeddings: Any = None, *args: Any, **kwargs: Any) -> None:
        with self._changing():
            super().update(ids, embeddings, *args, **kwargs)
        self._wrote(ids, embeddings)

    def delete(
        self, ids: Any = None, where: Any = None, where_document: Any = None, limit: int | None = None
    ) -> DeleteResult:
        with self._changing():
            result = super().delete(ids, where, where_document, limit)
        with self._lock:
            if self._held is not None and ids is not None and not (where or where_document):
                self._generation += 1
                self._small = True  # fewer records now, perhaps few enough: the next search counts them
                self._matrix = None
                for id_ in maybe_cast_one_to_many(ids) or []:
                    self._held.pop(id_, None)
            else:  # which records a filter removed, chromadb knows: read them all again
                self._forget()
        return result

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Around a chromadb write: if it fails, it may still have committed (storage.chroma's
        storage_errors), so the vectors held are read again from chromadb at the next search."""
        try:
            yield
        except BaseException:
            with self._lock:
                self._forget()
            raise

    def _forget(self) -> None:
        """Read every vector again at the next search (the caller holds the lock)."""
        self._generation += 1
        self._held, self._matrix, self._small = None, None, True

    def _wrote(self, ids: Any, embeddings: Any) -> None:
        if embeddings is None:  # texts or metadata only: the vectors are as they were
            return
        with self._lock:
            self._generation += 1
            self._matrix = None
            if self._held is None:
                return
            self._held.update(zip(maybe_cast_one_to_many(ids) or [], _unit(embeddings), strict=True))
            if len(self._held) > self._most:
                self._held, self._small = None, False

    def _vectors(self) -> tuple[list[str], Vectors] | None:
        """Every stored (id, unit vector), as a list and a matrix; None while it holds more than
        `most` or its vectors cannot be read (chromadb's own query answers then)."""
        with self._lock:
            if not self._small:
                return None
            if self._held is not None:
                return self._stacked()
            generation = self._generation
        if self.count() > self._most:
            with self._lock:
                self._small = generation != self._generation  # a write meanwhile: count again next time
            return None
        try:
            found = self.get(include=["embeddings"])
        except InternalError:  # a vector the index does not hold: a broken index is being rebuilt
            return None
        with self._lock:
            if generation != self._generation:  # a write came meanwhile: chromadb's query answers this one
                return None
            self._held = dict(zip(found["ids"], _unit(found["embeddings"]) if found["ids"] else [], strict=True))
            return self._stacked()

    def _stacked(self) -> tuple[list[str], Vectors]:
        """`_held` as ids and a matrix, made once after each change (the caller holds the lock)."""
        assert self._held is not None
        if self._matrix is None:
            ids = list(self._held)
            self._matrix = (ids, np.stack([self._held[id_] for id_ in ids]) if ids else np.empty((0, 0), np.float32))
        return self._matrix

    def _exact(
        self,
        held: tuple[list[str], Vectors],
        queries: Vectors,
        n_results: int,
        where: Any,
        where_document: Any,
        include: Sequence[str],
    ) -> QueryResult:
        ids, matrix = held
        if where or where_document:  # chromadb resolves the filters, as its own query would
            allowed = set(self.get(where=where, where_document=where_document, include=[])["ids"])
            rows = [row for row, id_ in enumerate(ids) if id_ in allowed]
            ids, matrix = [ids[row] for row in rows], matrix[rows]
        top_ids: list[list[str]] = []
        distances: list[list[float]] = []
        for scores in queries @ matrix.T if ids else np.empty((len(queries), 0), np.float32):
            best = np.argsort(-scores, kind="stable")[:n_results]
            top_ids.append([ids[row] for row in best])
            distances.append([float(1.0 - scores[row]) for row in best])  # chromadb's cosine distance
        fields = [field for field in ("documents", "metadatas") if field in include]
        wanted = sorted({id_ for row in top_ids for id_ in row})
        found: Any = self.get(ids=wanted, include=cast(Any, fields)) if wanted and fields else {"ids": []}
        # A record deleted since the vectors were read has no text or metadata: callers leave it out.
        columns = {field: dict(zip(found["ids"], found.get(field) or [], strict=True)) for field in fields}
        result: dict[str, Any] = dict.fromkeys(("embeddings", "documents", "metadatas", "uris", "data"))
        result |= {field: [[columns[field].get(id_) for id_ in row] for row in top_ids] for field in fields}
        result |= {"ids": top_ids, "distances": distances if "distances" in include else None}
        return cast(QueryResult, result | {"included": list(include)})
