"""The tenant's collection in an embedded chromadb: quota-checked, all-or-nothing writes and search.

A plain class (no Ray) so it can be tested directly; the ChromaStore deployment is its only owner
in the running service, because two processes on one chromadb folder hang or disagree.
"""

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import chromadb
import numpy as np
from chromadb.api.client import Client
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.api.models.Collection import Collection
from chromadb.api.types import validate_where, validate_where_document
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError, InvalidArgumentError

from deployments.core.config import Settings
from deployments.core.errors import (
    ConfigError,
    InvalidFilter,
    NotFound,
    PlanLimitExceeded,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
    StorageUnavailable,
)
from deployments.core.types import Chunks, Filter, Hit, Metadata, Vectors
from deployments.storage import snapshot
from deployments.storage.chunk_store import CHUNK_SET, ChunkStore, parent_metadata, span_of
from deployments.storage.index_check import REBUILD_MARKER, index_folders, quarantine_broken_indexes
from deployments.storage.internal_metadata import (
    OWN_VECTOR,
    encode_vector,
    own_vector,
    public,
    replacing,
    replacing_public,
)
from deployments.storage.keyword_index import KeywordIndex
from deployments.storage.ranking import HYBRID_CANDIDATES, Query, Scored, fuse

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

KEYWORD_DIR = "keyword"
CHUNKS_SUFFIX = "-chunks"  # the chunk collection's name: the tenant's collection name and this
PAGE = 1_000  # documents read at a time when the keyword index is rebuilt

logger = logging.getLogger("ray.serve")

INCLUDED = {"text": "documents", "metadata": "metadatas", "embedding": "embeddings"}  # our names -> chromadb's


class TenantStore:
    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._settings = settings
        self.quota = settings.quota
        # Before chromadb opens the folder: a broken index would crash it (deployments.storage.index_check).
        self.quarantined = quarantine_broken_indexes(settings.data_dir)
        self._rebuild_marker = settings.data_dir / REBUILD_MARKER
        self._client = chromadb.PersistentClient(
            path=str(settings.data_dir), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )
        identity = {
            "tenant_id": settings.tenant_id,
            "model_name": settings.model_name,
            "dimension": settings.dimension,
            "vectors": settings.vectors,
        }
        self._collection = self._open_collection(settings.collection_name, identity)
        stored = self._collection.metadata or {}
        if stored.get("model_name") != settings.model_name or stored.get("dimension") != settings.dimension:
            raise ConfigError(
                f"the data in {settings.data_dir} was embedded with MODEL_NAME={stored.get('model_name')!r} "
                f"(DIMENSION={stored.get('dimension')}), but the settings say MODEL_NAME={settings.model_name!r} "
                f"(DIMENSION={settings.dimension}): vectors from different models cannot be searched together"
            )
        # Collections made before the int8 backend existed hold fp32 vectors.
        if (made := stored.get("vectors", "fp32")) != settings.vectors:
            raise ConfigError(
                f"the data in {settings.data_dir} holds {made} vectors, but EMBED_BACKEND={settings.embed_backend} "
                f"makes {settings.vectors} ones: set EMBED_BACKEND back, or move the tenant by exporting its "
                "documents and importing them into a fresh instance (README: Settings)"
            )
        self.chunks = ChunkStore(self._open_collection(settings.collection_name + CHUNKS_SUFFIX, identity))
        # The collections a rebuild walks (ChromaStore.rebuild_index): documents, then chunks.
        self.collections = {"documents": self._collection, "chunks": self.chunks.collection}
        # Writes are serialised so the quota check and the write it guards are one atomic step.
        self._write_lock = threading.Lock()
        self.keywords = KeywordIndex(settings.data_dir / KEYWORD_DIR)
        self._bring_keywords_in_step()

    def _open_collection(self, name: str, identity: dict[str, Any]) -> Collection:
        return self._client.get_or_create_collection(
            name, configuration={"hnsw": HNSW_CONFIGURATION}, metadata=identity, embedding_function=None
        )

    def _bring_keywords_in_step(self) -> None:
        """Finish what a crash interrupted, and rebuild an index that is missing or has drifted."""
        self.keywords.sync_pending(self._texts)
        count = self._collection.count()
        if self.keywords.count() != count:
            logger.warning(
                "keyword index holds %d documents, the store %d: rebuilding it", self.keywords.count(), count
            )
            self.keywords.rebuild(self._all_texts(count))

    def _all_texts(self, count: int) -> Iterator[tuple[str, str]]:
        for offset in range(0, count, PAGE):
            found = self._collection.get(include=["documents"], limit=PAGE, offset=offset)
            yield from zip(found["ids"], cast(list[str], found["documents"]), strict=True)

    def _texts(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        found = self._collection.get(ids=ids, include=["documents"])
        return dict(zip(found["ids"], cast(list[str], found["documents"]), strict=True))

    @contextmanager
    def _keywords_follow(self, ids: list[str]) -> Iterator[None]:
        """Bracket a chromadb write so the keyword index ends with what chromadb holds for `ids`
        whatever happens (deployments.storage.keyword_index)."""
        self.keywords.mark_pending(ids)
        try:
            yield
        finally:
            try:
                self.keywords.sync_pending(self._texts)
            except Exception:  # the marks stay: the next write or start syncs them
                logger.exception("keyword index update failed; it is retried on the next write")

    def count(self) -> int:
        return self._collection.count()

    @property
    def rebuild_pending(self) -> bool:
        """True from the moment a broken index is found until every stored text has its vector again
        (kept on disk, so a restart in the middle of a rebuild resumes it)."""
        return self._rebuild_marker.exists()

    def ids(self, collection: str = "documents") -> list[str]:
        return self.collections[collection].get(include=[])["ids"]

    def texts_without_vectors(
        self, ids: list[str], collection: str = "documents"
    ) -> tuple[list[str], list[str], list[Vectors | None]]:
        """(ids, texts, supplied vectors) of the stored records among `ids`, or none when all
        their vectors are indexed; a supplied vector is the tenant's own (None: the model's). chromadb
        only says that some vector is missing, so a batch is all or nothing."""
        records = self.collections[collection]
        try:
            with _vectors_missing():
                records.get(ids=ids, include=["embeddings"])
            return [], [], []
        except IndexRebuilding:
            found = records.get(ids=ids, include=["documents", "metadatas"])
            supplied = [own_vector(metadata) for metadata in found["metadatas"] or []]
            return found["ids"], cast(list[str], found["documents"]), supplied

    def restore_vectors(self, ids: list[str], texts: list[str], vectors: Vectors, collection: str = "documents") -> int:
        """Index the vectors of records whose text is still the one embedded (a document
        replaced or deleted meanwhile already has its new state); returns how many were restored."""
        row_of = {id_: row for row, id_ in enumerate(ids)}
        records = self.collections[collection]
        with self._write_lock:
            found = records.get(ids=ids, include=["documents", "metadatas"])
            still = [(id_, row_of[id_], metadata) for id_, text, metadata in _rows(found) if text == texts[row_of[id_]]]
            if still:
                kept_ids, rows, metadatas = zip(*still, strict=True)
                with _storage_errors():
                    records.upsert(
                        ids=list(kept_ids),
                        embeddings=vectors[list(rows)],
                        documents=[texts[row] for row in rows],
                        metadatas=list(metadatas),
                    )
            return len(still)

    def finish_rebuild(self) -> None:
        self._rebuild_marker.unlink(missing_ok=True)

    def upsert(
        self,
        ids: list[str],
        texts: list[str],
        vectors: Vectors,
        metadatas: list[Metadata],
        supplied: list[bool] | None = None,
        chunks: list[Chunks | None] | None = None,
    ) -> int:
        """Add or replace documents, all or none; returns the count after the write. `supplied`
        marks the vectors the tenant gave (kept beside the document too: internal_metadata);
        `chunks`, the documents cut into chunks (deployments.storage.chunk_store: their first chunk's vector
        is the one in `vectors`)."""
        with self._write_lock:
            existing = self._collection.get(ids=ids, include=["metadatas"])
            old_metadata = dict(zip(existing["ids"], existing["metadatas"] or [], strict=True))
            count = self._collection.count()
            added = len(ids) - len(old_metadata)
            self._check_room(count, added)
            kept = [
                {**new, OWN_VECTOR: encode_vector(vector)} if supplied and supplied[row] else new
                for row, (new, vector) in enumerate(zip(metadatas, vectors, strict=True))
            ]
            chunked = [(row, cut) for row, cut in enumerate(chunks or []) if cut is not None]
            with _storage_errors():
                tokens = self.chunks.write(
                    [ids[row] for row, _ in chunked],
                    [texts[row] for row, _ in chunked],
                    [cut for _, cut in chunked],
                    [kept[row] for row, _ in chunked],
                )
            for (row, cut), token in zip(chunked, tokens, strict=True):
                kept[row] = parent_metadata(kept[row], cut, token)
            replaced = [replacing(old_metadata.get(id_), new) for id_, new in zip(ids, kept, strict=True)]
            with self._keywords_follow(ids), _storage_errors():
                self._collection.upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=replaced)  # type: ignore[arg-type]
            with _storage_errors():
                self.chunks.drop_stale(ids, tokens)
            return count + added

    def _check_room(self, count: int, added: int) -> None:
        if count + added > self.quota:
            raise QuotaExceeded(
                f"the quota is {self.quota} documents and the collection holds {count}: this request "
                f"would add {added} new ones; nothing was stored",
                field="documents",
            )

    def stored_vectors(self, ids: list[str], texts: list[str]) -> dict[str, Vectors]:
        """What an /embed/ asks before any model run. Refuses it (QuotaExceeded) if its new ids would
        pass the quota now (upsert checks again, atomically, under the write lock); else the stored
        vector of each id whose stored text equals the given one and was embedded by the model,
        whole: re-sending an unchanged document (say, to update its metadata) needs no embedding.
        (A supplied vector or a chunked document's first-chunk vector is not that.)"""
        wanted = dict(zip(ids, texts, strict=True))
        count = self._collection.count()
        try:
            with _vectors_missing():
                found = self._collection.get(ids=ids, include=["documents", "embeddings", "metadatas"])
        except IndexRebuilding:  # some are not indexed yet: embedding them all again gives the same vectors
            self._check_room(count, len(wanted) - len(self._collection.get(ids=ids, include=[])["ids"]))
            return {}
        self._check_room(count, len(wanted) - len(found["ids"]))
        documents = found["documents"] or []
        embeddings = found["embeddings"] if found["embeddings"] is not None else []
        metadatas = found["metadatas"] or []
        return {
            id_: np.asarray(vector, dtype=np.float32)
            for id_, text, vector, metadata in zip(found["ids"], documents, embeddings, metadatas, strict=True)
            if wanted.get(id_) == text and own_vector(metadata) is None and CHUNK_SET not in (metadata or {})
        }

    def get(self, ids: list[str], include: list[str]) -> list[dict[str, Any]]:
        """The stored documents among `ids`, in the order asked, with the fields `include` names."""
        with _vectors_missing():
            found = self._collection.get(ids=list(dict.fromkeys(ids)), include=_included(include))
        by_id = {document["id"]: document for document in _documents(found, include)}
        return [by_id[id_] for id_ in dict.fromkeys(ids) if id_ in by_id]

    def page(
        self, limit: int, offset: int, where: Filter | None, where_document: Filter | None, include: list[str]
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of the documents matching the filters, in the order they were first added, and the
        offset of the next page (None on the last)."""
        _check_filters(where, where_document)
        with _vectors_missing():
            found = self._collection.get(
                **_filters(where, where_document),
                limit=limit + 1,  # one more than asked says whether another page follows
                offset=offset,
                include=_included(include),
            )
        documents = _documents(found, include)
        return documents[:limit], (offset + limit if len(documents) > limit else None)

    def update_metadata(self, ids: list[str], metadatas: list[Metadata]) -> int:
        """Replace the metadata of existing documents, all or none; text and vector stay."""
        with self._write_lock:
            existing = self._collection.get(ids=ids, include=["metadatas"])
            old = dict(zip(existing["ids"], existing["metadatas"] or [], strict=True))
            missing = [id_ for id_ in ids if id_ not in old]
            if missing:
                raise NotFound(
                    f"no document with id {', '.join(map(repr, missing[:10]))}; nothing was updated", "documents"
                )
            replaced = [replacing_public(old[id_], new) for id_, new in zip(ids, metadatas, strict=True)]
            with _storage_errors():
                self._collection.update(ids=ids, metadatas=replaced)  # type: ignore[arg-type]
                self.chunks.update_metadata(ids, metadatas)
            return len(ids)

    def delete(self, ids: list[str]) -> tuple[int, int]:
        """Delete the ids that exist; returns (how many existed, count after). An id named twice counts once."""
        ids = list(dict.fromkeys(ids))  # chromadb refuses duplicate ids (DuplicateIDError)
        with self._write_lock:
            return self._delete_found(self._collection.get(ids=ids, include=[])["ids"])

    def count_matching(self, where: Filter | None, where_document: Filter | None, most: int) -> int:
        """How many documents match the filters, counted up to `most` + 1."""
        return len(self._matching(where, where_document, most + 1))

    def delete_where(self, where: Filter | None, where_document: Filter | None, most: int) -> tuple[int, int]:
        """Delete every document matching the filters, all or none: refused when more than `most`
        match (the plan's documents per request). Returns (how many were deleted, count after)."""
        with self._write_lock:
            found = self._matching(where, where_document, most + 1)
            if len(found) > most:
                raise PlanLimitExceeded(
                    f"the filter matches more than {most} documents, the plan's most per request; nothing was "
                    "deleted: narrow the filter, or delete by ids in pages (POST /list/)",
                    field="where" if where else "where_document",
                )
            return self._delete_found(found)

    def _matching(self, where: Filter | None, where_document: Filter | None, most: int) -> list[str]:
        """The ids of up to `most` documents matching the filters."""
        _check_filters(where, where_document)
        return self._collection.get(**_filters(where, where_document), limit=most, include=[])["ids"]

    def _delete_found(self, found: list[str]) -> tuple[int, int]:
        """Delete these existing ids everywhere they live; (how many, count after). Holds the write lock."""
        if found:
            with self._keywords_follow(found), _storage_errors():
                self._collection.delete(ids=found)
            with _storage_errors():
                self.chunks.delete(found)
        return len(found), self._collection.count()

    def search_many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        """The top_k best documents of each query, best first, in its mode: `semantic` scores by
        cosine similarity, `keyword` by BM25, `hybrid` by the fusion of both (deployments.storage.ranking).
        Vector searches sharing a size and filter go to chromadb as one call; a bad filter fails
        only the queries that carry it."""
        results: list[list[Hit] | ServiceError] = [[] for _ in queries]
        semantic = self._semantic_many([(i, q) for i, q in enumerate(queries) if q.mode != "keyword"])
        for index, query in enumerate(queries):
            try:
                found = semantic.get(index, [])
                if isinstance(found, ServiceError):
                    raise found
                if query.mode == "semantic":
                    results[index] = found
                    continue
                keyword = self._keyword(query.text, _candidates(query), query.where, query.where_document)
                results[index] = keyword[: query.top_k] if query.mode == "keyword" else _fused(found, keyword, query)
            except InvalidFilter as exc:
                results[index] = exc
        return results

    def _semantic_many(self, queries: list[tuple[int, Query]]) -> dict[int, list[Hit] | ServiceError]:
        groups: dict[str, list[tuple[int, Query]]] = {}
        found: dict[int, list[Hit] | ServiceError] = {}
        for index, query in queries:
            try:
                _check_filters(query.where, query.where_document)
            except InvalidFilter as exc:
                found[index] = exc
                continue
            key = json.dumps([_candidates(query), query.where or None, query.where_document or None], sort_keys=True)
            groups.setdefault(key, []).append((index, query))
        for members in groups.values():
            first = members[0][1]
            vectors = np.stack([cast(Vectors, query.vector) for _, query in members])
            try:
                answers = self._query(vectors, _candidates(first), first.where, first.where_document)
                answers = self._best_chunks(vectors, _candidates(first), first.where, first.where_document, answers)
                found.update((index, hits) for (index, _), hits in zip(members, answers, strict=True))
            except InvalidFilter as exc:
                found.update((index, exc) for index, _ in members)
        return found

    def _keyword(self, text: str, limit: int, where: Filter | None, where_document: Filter | None) -> list[Hit]:
        _check_filters(where, where_document)
        allowed = None
        if where or where_document:  # chromadb resolves the filters; the keyword index ranks what passes
            with _filter_errors(where):
                allowed = self._collection.get(**_filters(where, where_document), include=[])["ids"]
        return self._hits(self.keywords.search(text, limit, allowed))

    def _hits(self, scored: Scored) -> list[Hit]:
        """Hits for (id, score) pairs, with the stored text and metadata; ids deleted since are left out."""
        if not scored:
            return []
        found = self._collection.get(ids=[id_ for id_, _ in scored], include=["documents", "metadatas"])
        stored = {id_: (text, metadata) for id_, text, metadata in _rows(found)}
        return [
            {"id": id_, "text": stored[id_][0], "metadata": public(stored[id_][1]), "score": score}
            for id_, score in scored
            if id_ in stored
        ]

    def _query(
        self, vectors: Vectors, top_k: int, where: Filter | None, where_document: Filter | None
    ) -> list[list[Hit]]:
        with _filter_errors(where):
            found = self._collection.query(
                query_embeddings=vectors,
                n_results=top_k,
                **_filters(where, where_document),
                include=["documents", "metadatas", "distances"],
            )
        documents = cast(list[list[str]], found["documents"])
        metadatas = cast(list[list[Metadata | None]], found["metadatas"])
        distances = cast(list[list[float]], found["distances"])
        # A document deleted while the query ran can still come back from the index, without its
        # text: it is gone, so it is left out (the search sees the store after that delete).
        return [
            [
                {"id": id_, "text": text, "metadata": metadata, "score": 1.0 - distance}
                for id_, text, metadata, distance in zip(*row, strict=True)
                if text is not None
            ]
            for row in zip(found["ids"], documents, metadatas, distances, strict=True)
        ]

    def _best_chunks(
        self,
        vectors: Vectors,
        candidates: int,
        where: Filter | None,
        where_document: Filter | None,
        answers: list[list[Hit]],
    ) -> list[list[Hit]]:
        """Each query's hits, one per document at its best chunk's score and span. A chunk counts
        only if its document exists, passes both filters and still has that chunk set."""
        merged = []
        for hits, chunks in zip(answers, self.chunks.best_spans(vectors, candidates, where), strict=True):
            best = {hit["id"]: _with_span(hit, span_of(hit["metadata"])) for hit in hits}
            better = [
                parent
                for parent, (score, _, _) in chunks.items()
                if parent not in best or score > best[parent]["score"]
            ]
            if better:
                found = self._collection.get(
                    ids=better, **_filters(where, where_document), include=["documents", "metadatas"]
                )
                for parent, text, metadata in _rows(found):
                    score, span, chunk_set = chunks[parent]
                    if (metadata or {}).get(CHUNK_SET) == chunk_set:
                        hit = {"id": parent, "text": text, "metadata": metadata, "score": score}
                        best[parent] = _with_span(hit, span)
            merged.append(sorted(best.values(), key=lambda hit: hit["score"], reverse=True)[:candidates])
        return merged

    def snapshot(self, destination: Path) -> dict[str, Any]:
        """A consistent copy of the tenant's data in `destination` (storage.snapshot); returns its manifest."""
        settings = self._settings
        with self._write_lock:
            manifest = {
                "tenant_id": settings.tenant_id,
                "collection": settings.collection_name,
                "model_name": settings.model_name,
                "dimension": settings.dimension,
                "vectors": settings.vectors,
                "count": self._collection.count(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            try:
                snapshot.take(settings.data_dir, destination, index_folders(settings.data_dir), manifest)
            except (OSError, sqlite3.Error) as exc:
                raise StorageUnavailable(f"the snapshot could not be written ({exc}); nothing was kept") from None
        return manifest

    def close(self) -> None:
        """Release chromadb's and tantivy's files and threads (the process's exit does the same)."""
        self.keywords.close()
        cast(Client, self._client).close()  # the concrete client has close(); the ClientAPI type lacks it


def _rows(found: Any) -> Iterator[tuple[str, str, Metadata | None]]:
    """(id, text, metadata) of each record of a chromadb get that included documents and metadatas."""
    return zip(found["ids"], found["documents"] or [], found["metadatas"] or [], strict=True)


def _with_span(hit: Hit, span: list[int] | None) -> Hit:
    """A hit as the API shows it: the tenant's metadata only, and the span of a chunked document's chunk."""
    shown = {**hit, "metadata": public(hit["metadata"])}
    return {**shown, "span": span} if span is not None else shown


def _candidates(query: Query) -> int:
    """How many results each ranking gives: top_k, or more for hybrid fusion to choose from."""
    return query.top_k if query.mode == "semantic" else max(query.top_k, HYBRID_CANDIDATES)


def _fused(semantic: list[Hit], keyword: list[Hit], query: Query) -> list[Hit]:
    ranked = fuse(
        [(hit["id"], hit["score"]) for hit in semantic], [(hit["id"], hit["score"]) for hit in keyword], query.weight
    )
    by_id = {hit["id"]: hit for hit in [*keyword, *semantic]}
    return [{**by_id[id_], "score": score} for id_, score in ranked[: query.top_k]]


def _check_filters(where: Filter | None, where_document: Filter | None) -> None:
    """chromadb's own validation of each filter, so a bad one is named (an empty one means none)."""
    for field, value, validate in (
        ("where", where, validate_where),
        ("where_document", where_document, validate_where_document),
    ):
        if value:
            try:
                validate(cast(Any, value))
            except (ValueError, TypeError) as exc:
                raise InvalidFilter(str(exc), field=field) from None


def _filters(where: Filter | None, where_document: Filter | None) -> dict[str, Any]:
    """chromadb's filter arguments; an empty filter means none."""
    return {"where": where or None, "where_document": where_document or None}


def _included(include: list[str]) -> Any:
    return [INCLUDED[field] for field in include]


def _documents(found: Any, include: list[str]) -> list[dict[str, Any]]:
    """chromadb's column-wise answer as one dict per document, with the fields `include` names."""
    columns = {field: found[INCLUDED[field]] for field in include}
    documents = []
    for row, id_ in enumerate(found["ids"]):
        document: dict[str, Any] = {"id": id_}
        for field, values in columns.items():
            value = values[row] if values is not None else None
            if field == "embedding" and value is not None:
                value = [float(x) for x in value]
            document[field] = public(value) if field == "metadata" else value
        documents.append(document)
    return documents


@contextmanager
def _filter_errors(where: Filter | None) -> Iterator[None]:
    """chromadb validates a filter as it uses it; its message says what is wrong."""
    try:
        yield
    except (ValueError, TypeError, InvalidArgumentError) as exc:
        if not where:
            raise
        raise InvalidFilter(str(exc), field="where") from None


@contextmanager
def _storage_errors() -> Iterator[None]:
    """A write the disk refused becomes a clear 507; the write is one SQLite transaction, so nothing
    of it was stored, and reads go on working from what is on disk."""
    try:
        yield
    except InternalError as exc:
        if not any(failure in str(exc) for failure in STORAGE_FAILURES):
            raise
        raise StorageUnavailable.refused(exc) from None


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
