"""The tenant's collection in an embedded chromadb: quota-checked, all-or-nothing writes and search.

A plain class (no Ray) so it can be tested directly; the ChromaStore deployment is its only owner
in the running service, because two processes on one chromadb folder hang or disagree.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import chromadb
import numpy as np
from chromadb.api.client import Client
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError, InvalidArgumentError

from deployments.backends import Vectors
from deployments.config import Settings
from deployments.errors import (
    ConfigError,
    InvalidFilter,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
    StorageUnavailable,
)
from deployments.index_check import REBUILD_MARKER, quarantine_broken_indexes

# Cosine space because the model's vectors are compared by angle. A search breadth (ef_search)
# well above chromadb's default keeps recall@10 against exact search high (see README, Performance).
HNSW_CONFIGURATION: CreateHNSWConfiguration = {
    "space": "cosine",
    "ef_construction": 200,
    "max_neighbors": 32,
    "ef_search": 128,
}

# How SQLite (under chromadb) words a write the disk refused: full, failing, or read-only.
STORAGE_FAILURES = ("database or disk is full", "disk I/O error", "readonly database")
# How chromadb words a read of a vector its index does not hold (while a broken index is rebuilt).
VECTOR_MISSING = "Error finding id"

Metadata = dict[str, str | int | float | bool]
Hit = dict[str, Any]
Query = tuple[Vectors, int, dict[str, Any] | None]  # (vector, top_k, where)


class TenantStore:
    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.quota = settings.quota
        # Before chromadb opens the folder: a broken index would crash it (deployments.index_check).
        self.quarantined = quarantine_broken_indexes(settings.data_dir)
        self._rebuild_marker = settings.data_dir / REBUILD_MARKER
        self._client = chromadb.PersistentClient(
            path=str(settings.data_dir), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )
        identity = {"tenant_id": settings.tenant_id, "model_name": settings.model_name, "dimension": settings.dimension}
        self._collection = self._client.get_or_create_collection(
            settings.collection_name,
            configuration={"hnsw": HNSW_CONFIGURATION},
            metadata=identity,
            embedding_function=None,
        )
        stored = self._collection.metadata or {}
        if stored.get("model_name") != settings.model_name or stored.get("dimension") != settings.dimension:
            raise ConfigError(
                f"the data in {settings.data_dir} was embedded with MODEL_NAME={stored.get('model_name')!r} "
                f"(DIMENSION={stored.get('dimension')}), but the settings say MODEL_NAME={settings.model_name!r} "
                f"(DIMENSION={settings.dimension}): vectors from different models cannot be searched together"
            )
        # Writes are serialised so the quota check and the write it guards are one atomic step.
        self._write_lock = threading.Lock()

    def count(self) -> int:
        return self._collection.count()

    @property
    def rebuild_pending(self) -> bool:
        """True from the moment a broken index is found until every stored text has its vector again
        (kept on disk, so a restart in the middle of a rebuild resumes it)."""
        return self._rebuild_marker.exists()

    def ids(self) -> list[str]:
        return self._collection.get(include=[])["ids"]

    def texts_without_vectors(self, ids: list[str]) -> tuple[list[str], list[str]]:
        """(ids, texts) of the stored documents among `ids`, or none when all their vectors are
        indexed. chromadb only says that some vector is missing, so a batch is all or nothing."""
        try:
            with _vectors_missing():
                self._collection.get(ids=ids, include=["embeddings"])
            return [], []
        except IndexRebuilding:
            found = self._collection.get(ids=ids, include=["documents"])
            return found["ids"], cast(list[str], found["documents"])

    def restore_vectors(self, ids: list[str], texts: list[str], vectors: Vectors) -> int:
        """Index the vectors of documents whose text is still the one embedded (a document
        replaced or deleted meanwhile already has its new state); returns how many were restored."""
        row_of = {id_: row for row, id_ in enumerate(ids)}
        with self._write_lock:
            found = self._collection.get(ids=ids, include=["documents", "metadatas"])
            stored = zip(found["ids"], found["documents"] or [], found["metadatas"] or [], strict=True)
            still = [(id_, row_of[id_], metadata) for id_, text, metadata in stored if text == texts[row_of[id_]]]
            if still:
                kept_ids, rows, metadatas = zip(*still, strict=True)
                with _storage_errors():
                    self._collection.upsert(
                        ids=list(kept_ids),
                        embeddings=vectors[list(rows)],
                        documents=[texts[row] for row in rows],
                        metadatas=list(metadatas),
                    )
            return len(still)

    def finish_rebuild(self) -> None:
        self._rebuild_marker.unlink(missing_ok=True)

    def close(self) -> None:
        """Release chromadb's files and threads (the replica's process exit does the same)."""
        cast(Client, self._client).close()  # the concrete client has close(); the ClientAPI type lacks it

    def upsert(self, ids: list[str], texts: list[str], vectors: Vectors, metadatas: list[Metadata]) -> int:
        """Add or replace documents, all or none; returns the count after the write."""
        with self._write_lock:
            existing = self._collection.get(ids=ids, include=["metadatas"])
            old_metadata = dict(zip(existing["ids"], existing["metadatas"] or [], strict=True))
            count = self._collection.count()
            added = len(ids) - len(old_metadata)
            if count + added > self.quota:
                raise QuotaExceeded(
                    f"the quota is {self.quota} documents and the collection holds {count}: this request "
                    f"would add {added} new ones; nothing was stored",
                    field="documents",
                )
            replaced = [_replacing(old_metadata.get(id_), new) for id_, new in zip(ids, metadatas, strict=True)]
            with _storage_errors():
                self._collection.upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=replaced)  # type: ignore[arg-type]
            return count + added

    def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        """The stored vector of each id whose stored text equals the given one: re-sending an
        unchanged document (say, to update its metadata) needs no embedding."""
        wanted = dict(zip(ids, texts, strict=True))
        try:
            with _vectors_missing():
                found = self._collection.get(ids=ids, include=["documents", "embeddings"])
        except IndexRebuilding:
            return {}  # some are not indexed yet: embedding them all again gives the same vectors
        documents = found["documents"] or []
        embeddings = found["embeddings"] if found["embeddings"] is not None else []
        return {
            id_: np.asarray(vector, dtype=np.float32)
            for id_, text, vector in zip(found["ids"], documents, embeddings, strict=True)
            if wanted.get(id_) == text
        }

    def get(self, ids: list[str], include: list[str]) -> list[dict[str, Any]]:
        """The stored documents among `ids`, in the order asked, with the fields `include` names."""
        wanted = {"text": "documents", "metadata": "metadatas", "embedding": "embeddings"}
        with _vectors_missing():
            found: Any = self._collection.get(ids=list(dict.fromkeys(ids)), include=[wanted[f] for f in include])  # type: ignore[misc]
        columns = {field: found[wanted[field]] for field in include}
        by_id: dict[str, dict[str, Any]] = {}
        for row, id_ in enumerate(found["ids"]):
            document: dict[str, Any] = {"id": id_}
            for field, values in columns.items():
                value = values[row] if values is not None else None
                if field == "embedding" and value is not None:
                    value = [float(x) for x in value]
                document[field] = (value or {}) if field == "metadata" else value
            by_id[id_] = document
        return [by_id[id_] for id_ in dict.fromkeys(ids) if id_ in by_id]

    def delete(self, ids: list[str]) -> tuple[int, int]:
        """Delete the ids that exist; returns (how many existed, count after). An id named twice counts once."""
        ids = list(dict.fromkeys(ids))  # chromadb refuses duplicate ids (DuplicateIDError)
        with self._write_lock:
            found = self._collection.get(ids=ids, include=[])["ids"]
            if found:
                with _storage_errors():
                    self._collection.delete(ids=found)
            return len(found), self._collection.count()

    def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        """The top_k closest documents of each query, best first, scored by cosine similarity.
        Queries sharing top_k and filter go to chromadb as one call; a bad filter fails only the
        queries that carry it."""
        groups: dict[str, list[int]] = {}
        for index, (_, top_k, where) in enumerate(queries):
            groups.setdefault(json.dumps([top_k, where or None], sort_keys=True), []).append(index)
        results: list[list[Hit] | ServiceError] = [[] for _ in queries]
        for members in groups.values():
            _, top_k, where = queries[members[0]]
            vectors = np.stack([queries[i][0] for i in members])
            try:
                for index, hits in zip(members, self._query(vectors, top_k, where), strict=True):
                    results[index] = hits
            except InvalidFilter as exc:
                for index in members:
                    results[index] = exc
        return results

    def _query(self, vectors: Vectors, top_k: int, where: dict[str, Any] | None) -> list[list[Hit]]:
        where = where or None  # an empty filter means no filter
        try:
            found = self._collection.query(
                query_embeddings=vectors,
                n_results=top_k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        except (ValueError, TypeError, InvalidArgumentError) as exc:
            # chromadb validates the filter as it queries; its message says what is wrong.
            if where is None:
                raise
            raise InvalidFilter(str(exc), field="where") from None
        documents = cast(list[list[str]], found["documents"])
        metadatas = cast(list[list[Metadata | None]], found["metadatas"])
        distances = cast(list[list[float]], found["distances"])
        # A document deleted while the query ran can still come back from the index, without its
        # text: it is gone, so it is left out (the search sees the store after that delete).
        return [
            [
                {"id": id_, "text": text, "metadata": metadata or {}, "score": 1.0 - distance}
                for id_, text, metadata, distance in zip(*row, strict=True)
                if text is not None
            ]
            for row in zip(found["ids"], documents, metadatas, distances, strict=True)
        ]


@contextmanager
def _storage_errors() -> Iterator[None]:
    """A write the disk refused becomes a clear 507; the write is one SQLite transaction, so nothing
    of it was stored, and reads go on working from what is on disk."""
    try:
        yield
    except InternalError as exc:
        if not any(failure in str(exc) for failure in STORAGE_FAILURES):
            raise
        raise StorageUnavailable(
            f"the data folder cannot take writes ({exc}); nothing was stored. Searches still work; "
            "free disk space or fix the folder's permissions, then retry"
        ) from None


class IndexRebuilding(ServiceUnavailable):
    """A vector was asked for while the index is being rebuilt after a crash."""


@contextmanager
def _vectors_missing() -> Iterator[None]:
    try:
        yield
    except InternalError as exc:
        if VECTOR_MISSING not in str(exc):
            raise
        raise IndexRebuilding(
            "some of these documents' vectors are being re-indexed after a crash (GET /healthz/ shows the "
            "progress); their texts and metadata are safe: retry shortly"
        ) from None


def _replacing(old: Any, new: Metadata) -> dict[str, Any] | None:
    """chromadb merges metadata on upsert; an upsert here replaces it, so old keys are cleared (None)."""
    merged: dict[str, Any] = {key: None for key in (old or {}) if key not in new}
    merged.update(new)
    return merged or None
