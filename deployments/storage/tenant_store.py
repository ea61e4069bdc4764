"""The tenant's collection in an embedded chromadb: opened and checked against the settings,
quota-checked all-or-nothing writes, reads, and snapshots. Search (storage.search) and index
rebuild (storage.rebuild) are its parts, sharing its collections and its write lock.

A plain class (no Ray) so it can be tested directly; the ChromaStore deployment is its only owner
in the running service, because two processes on one chromadb folder hang or disagree.
"""

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import chromadb
import numpy as np
from chromadb.api.client import Client
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings

from deployments.core.config import Settings
from deployments.core.errors import (
    ConfigError,
    NotFound,
    PlanLimitExceeded,
    QuotaExceeded,
    ServiceError,
    StorageUnavailable,
)
from deployments.core.types import Chunks, Document, Filter, Include, Metadata, SnapshotManifest, Vectors
from deployments.storage import data_format, snapshot
from deployments.storage.chroma import (
    HNSW_CONFIGURATION,
    IndexRebuilding,
    as_documents,
    filter_args,
    filter_errors,
    included,
    storage_errors,
    vectors_missing,
)
from deployments.storage.chunk_store import ChunkStore, parent_metadata
from deployments.storage.exact_search import ExactWhenSmall
from deployments.storage.free_space import MIB, refuse_without_room, volume_state, write_size
from deployments.storage.index_check import index_folders, quarantine_broken_indexes
from deployments.storage.internal_metadata import (
    CHUNK_SET,
    OWN_VECTOR_DIGEST,
    replacing,
    replacing_public,
    supplied_vector,
)
from deployments.storage.kept_vectors import KeptVectors, state_key, vector_digest
from deployments.storage.keyword_index import KeywordIndex
from deployments.storage.rebuild import IndexRebuild
from deployments.storage.search import TenantSearch

KEYWORD_DIR = "keyword"
CHUNKS_SUFFIX = "-chunks"  # the chunk collection's name: the tenant's collection name and this
PAGE = 1_000  # documents read at a time when the keyword index is rebuilt
# Documents in one write of several requests at most (TenantStore.upsert_many, delete_many); a
# request bigger than this is written alone. chromadb holds the GIL for a whole write, so searches
# in this process wait for it (deployments.store: REBUILD_BATCH): a shared write holds it no longer
# than one import batch of 64 documents (the Embedder's call) already does.
GROUP_DOCUMENTS = 64

logger = logging.getLogger("ray.serve")


@dataclass
class Upsert:
    """One request's documents, as TenantStore.upsert takes them."""

    ids: list[str]
    texts: list[str]
    vectors: Vectors
    metadatas: list[Metadata]
    supplied: list[bool] | None = None
    chunks: list[Chunks | None] | None = None

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass
class Delete:
    """One request's deletes, as TenantStore.delete and delete_where take them: the named `ids`, or,
    with `where` or `where_document`, every document the filters match, refused when more than
    `most` do. `expected`, how many the filters matched when the Ingress counted them, only sizes
    the write the request joins (the store matches them again, under its write lock)."""

    ids: list[str] = field(default_factory=list)
    where: Filter | None = None
    where_document: Filter | None = None
    most: int = 0
    expected: int = 0

    @property
    def by_filter(self) -> bool:
        return self.where is not None or self.where_document is not None

    @property
    def size(self) -> int:
        return self.expected if self.by_filter else len(self.ids)


class _Write(Protocol):
    @property
    def ids(self) -> list[str]: ...

    @property
    def size(self) -> int:
        """Documents the request writes (or, for a delete by filter, is expected to)."""
        ...


W = TypeVar("W", bound=_Write)
T = TypeVar("T")


class TenantStore:
    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._settings = settings
        self.quota = settings.quota
        self.format = data_format.opened(settings.data_dir)
        # Before chromadb opens the folder: a broken index would crash it (deployments.storage.index_check).
        self.quarantined = quarantine_broken_indexes(settings.data_dir)
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
        self.vectors = KeptVectors(settings.data_dir)
        chunk_records = self._open_collection(settings.collection_name + CHUNKS_SUFFIX, identity)
        self.chunks = ChunkStore(chunk_records, self.vectors)
        # Writes are serialised so the quota check and the write it guards are one atomic step.
        self._write_lock = threading.Lock()
        self.keywords = KeywordIndex(settings.data_dir / KEYWORD_DIR)
        self._bring_keywords_in_step()
        self.search = TenantSearch(self._collection, self.chunks, self.keywords)
        self.rebuild = IndexRebuild(
            {"documents": self._collection, "chunks": self.chunks.collection},
            self.vectors,
            self._write_lock,
            settings.data_dir,
            self.format,
        )

    def _open_collection(self, name: str, identity: dict[str, Any]) -> Collection:
        """The collection `name`, searched exactly while small (storage.exact_search)."""
        return ExactWhenSmall(
            self._client.get_or_create_collection(
                name, configuration={"hnsw": HNSW_CONFIGURATION}, metadata=identity, embedding_function=None
            )
        )

    def _bring_keywords_in_step(self) -> None:
        """Finish what a crash interrupted, then compare the ids each side holds, not their number (a
        missed add and a missed delete leave the counts equal). A text replaced under an id is always
        bracketed by a pending mark, which the first step finishes."""
        self.keywords.sync_pending(self._texts)
        stored, indexed = self._collection.get(include=[])["ids"], self.keywords.ids()
        differ = set(stored).symmetric_difference(indexed)
        if not differ and len(indexed) == len(stored):
            return
        logger.warning(
            "keyword index holds %d documents, the store %d, %d ids differ: bringing it in step",
            len(indexed),
            len(stored),
            len(differ),
        )
        if len(differ) <= PAGE and len(indexed) == len(set(indexed)):
            # Through the same marks as a write: a crash meanwhile is finished at the next start.
            self.keywords.mark_pending(sorted(differ))
            self.keywords.sync_pending(self._texts)
        else:
            self.keywords.rebuild(self._all_texts(len(stored)))

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
        marks the vectors the tenant gave (internal_metadata); every vector is kept (storage.kept_vectors);
        `chunks`, the documents cut into chunks (deployments.storage.chunk_store: their first chunk's vector
        is the one in `vectors`)."""
        return raised(self.upsert_many([Upsert(ids, texts, vectors, metadatas, supplied, chunks)])[0])

    def upsert_many(self, requests: list[Upsert]) -> list[int | Exception]:
        """Several requests' upserts, each all or none, in order, as few chromadb writes as can be:
        each write (chromadb's, the keyword index's commit, the reads before) costs about 25 CPU ms here,
        more than a few short documents' own, so concurrent small imports share them. A request
        refused (quota, disk) or failed has its error in its place; the others are written."""
        outcomes: list[int | Exception] = []
        with self._write_lock:
            for group in _write_groups(requests):
                outcomes += self._write_group(group)
        return outcomes

    def _write_group(self, group: list[Upsert]) -> list[int | Exception]:
        """Requests with no id in common, checked one after another against the quota and the disk
        as if written in turn, then the accepted ones written together. If that write fails, each
        is written again alone, so that one request's failure is no other's."""
        outcomes: list[int | Exception] = []
        try:
            existing = self._collection.get(
                ids=[id_ for request in group for id_ in request.ids], include=["metadatas"]
            )
            old_metadata = dict(zip(existing["ids"], existing["metadatas"] or [], strict=True))
            count = self._collection.count()
        except Exception as exc:  # nothing written yet: every request fails alike
            return [exc for _ in group]
        accepted: list[Upsert] = []
        incoming = 0
        for request in group:
            size = write_size(request.metadatas, request.texts, request.vectors, request.chunks or ())
            added = sum(id_ not in old_metadata for id_ in request.ids)
            try:
                self._check_disk(incoming + size)
                self._check_room(count, added)
            except ServiceError as exc:  # refused: nothing of it is written
                outcomes.append(exc)
                continue
            incoming += size
            count += added
            accepted.append(request)
            outcomes.append(count)
        if not accepted:
            return outcomes
        try:
            self._write_documents(_joined(accepted), old_metadata)
        except Exception as exc:
            # Each request alone, again: safe whether or not the failed write was committed (an
            # upsert of the same documents leaves the same state; chromadb can fail after its
            # commit), and each gets its own outcome.
            written = [exc] if len(accepted) == 1 else [self._write_group([request])[0] for request in accepted]
            rest = iter(written)
            return [outcome if isinstance(outcome, Exception) else next(rest) for outcome in outcomes]
        return outcomes

    def _write_documents(self, request: Upsert, old_metadata: dict[str, Any]) -> None:
        """One chromadb write of `request`'s documents (checked already), with their chunks, kept
        vectors and keyword-index entries."""
        ids, texts, vectors, metadatas = request.ids, request.texts, request.vectors, request.metadatas
        supplied, chunks = request.supplied, request.chunks
        kept = [
            {**new, OWN_VECTOR_DIGEST: vector_digest(vector)} if supplied and supplied[row] else new
            for row, (new, vector) in enumerate(zip(metadatas, vectors, strict=True))
        ]
        chunked = [(row, cut) for row, cut in enumerate(chunks or []) if cut is not None]
        with storage_errors():
            tokens = self.chunks.write(
                [ids[row] for row, _ in chunked],
                [texts[row] for row, _ in chunked],
                [cut for _, cut in chunked],
                [kept[row] for row, _ in chunked],
            )
        for (row, cut), token in zip(chunked, tokens, strict=True):
            kept[row] = parent_metadata(kept[row], cut, token)
        keys = [state_key(text, metadata) for text, metadata in zip(texts, kept, strict=True)]
        self.vectors.keep(ids, ids, keys, vectors)
        replaced = [replacing(old_metadata.get(id_), new) for id_, new in zip(ids, kept, strict=True)]
        with self._keywords_follow(ids), storage_errors():
            self._collection.upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=replaced)  # type: ignore[arg-type]
        self.vectors.drop_other_states(ids, keys)
        with storage_errors():
            self.chunks.drop_stale(ids, tokens)

    def volume(self) -> dict[str, Any]:
        return volume_state(self._settings.data_dir, self._settings.min_free_disk_mb * MIB)

    def _check_disk(self, incoming_bytes: int = 0) -> None:
        """Refuse a write (507, nothing done) that the volume may not have room to finish (storage.free_space)."""
        refuse_without_room(self._settings.data_dir, self._settings.min_free_disk_mb * MIB, incoming_bytes)

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
        Refused too (507) when the volume is short of room for it.
        (A supplied vector or a chunked document's first-chunk vector is not that.)"""
        self._check_disk(write_size([], texts))  # before the model runs for a write that cannot be stored
        wanted = dict(zip(ids, texts, strict=True))
        count = self._collection.count()
        try:
            with vectors_missing():
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
            if wanted.get(id_) == text and not supplied_vector(metadata) and CHUNK_SET not in (metadata or {})
        }

    def get(self, ids: list[str], include: list[Include]) -> list[Document]:
        """The stored documents among `ids`, in the order asked, with the fields `include` names."""
        with vectors_missing():
            found = self._collection.get(ids=list(dict.fromkeys(ids)), include=included(include))
        by_id = {document["id"]: document for document in as_documents(found, include)}
        return [by_id[id_] for id_ in dict.fromkeys(ids) if id_ in by_id]

    def page(
        self, limit: int, offset: int, where: Filter | None, where_document: Filter | None, include: list[Include]
    ) -> tuple[list[Document], int | None]:
        """A page of the documents matching the filters, in the order they were first added, and the
        offset of the next page (None on the last)."""
        with vectors_missing(), filter_errors(where, where_document):
            found = self._collection.get(
                **filter_args(where, where_document),
                limit=limit + 1,  # one more than asked says whether another page follows
                offset=offset,
                include=included(include),
            )
        documents = as_documents(found, include)
        return documents[:limit], (offset + limit if len(documents) > limit else None)

    def update_metadata(self, ids: list[str], metadatas: list[Metadata]) -> int:
        """Replace the metadata of existing documents, all or none; text and vector stay."""
        with self._write_lock:
            self._check_disk(write_size(metadatas))
            existing = self._collection.get(ids=ids, include=["metadatas"])
            old = dict(zip(existing["ids"], existing["metadatas"] or [], strict=True))
            missing = [id_ for id_ in ids if id_ not in old]
            if missing:
                raise NotFound(
                    f"no document with id {', '.join(map(repr, missing[:10]))}; nothing was updated", "documents"
                )
            replaced = [replacing_public(old[id_], new) for id_, new in zip(ids, metadatas, strict=True)]
            with storage_errors():
                self._collection.update(ids=ids, metadatas=replaced)  # type: ignore[arg-type]
                self.chunks.update_metadata(ids, metadatas)
            return len(ids)

    def delete(self, ids: list[str]) -> tuple[int, int]:
        """Delete the ids that exist; returns (how many existed, count after). An id named twice counts once."""
        return raised(self.delete_many([Delete(ids)])[0])

    def delete_where(self, where: Filter | None, where_document: Filter | None, most: int) -> tuple[int, int]:
        """Delete every document matching the filters, all or none: refused when more than `most`
        match (the plan's documents per request). Returns (how many were deleted, count after)."""
        return raised(self.delete_many([Delete(where=where, where_document=where_document, most=most)])[0])

    def delete_many(self, requests: list[Delete]) -> list[tuple[int, int] | Exception]:
        """Several requests' deletes (by ids or by filter), in order, as few chromadb writes as can
        be (the same grouping as upsert_many's, for the same fixed cost), each answered as if deleted
        alone. A filter matching more than its request's `most`, or one chromadb cannot read, refuses
        that request alone; a failed write fails each request of it alike."""
        outcomes: list[tuple[int, int] | Exception] = []
        with self._write_lock:
            for group in _write_groups(requests):
                outcomes += self._delete_group(group)
        return outcomes

    def _delete_group(self, group: list[Delete]) -> list[tuple[int, int] | Exception]:
        """One write for the group: each request deletes what it would after the ones before it
        (the named ids that exist, or its filter's matches), less what those already delete."""
        # chromadb refuses duplicate ids (DuplicateIDError), and reads everything for no ids at all.
        named = list(dict.fromkeys(id_ for request in group for id_ in request.ids))
        try:
            existing = set(self._collection.get(ids=named, include=[])["ids"]) if named else set()
            count = self._collection.count()
        except Exception as exc:  # nothing deleted yet: every request fails alike
            return [exc for _ in group]
        doomed: dict[str, None] = {}  # what this write deletes, in order, each id once
        outcomes: list[tuple[int, int] | Exception] = []
        for request in group:
            try:
                mine = (
                    self._matching_left(request, doomed)
                    if request.by_filter
                    else [id_ for id_ in dict.fromkeys(request.ids) if id_ in existing and id_ not in doomed]
                )
            except Exception as exc:  # refused: nothing of it is deleted
                outcomes.append(exc)
                continue
            doomed.update(dict.fromkeys(mine))
            count -= len(mine)
            outcomes.append((len(mine), count))
        if doomed:
            try:
                self._delete_found(list(doomed))
            except Exception as exc:
                return [outcome if isinstance(outcome, Exception) else exc for outcome in outcomes]
        return outcomes

    def count_matching(self, where: Filter | None, where_document: Filter | None, most: int) -> int:
        """How many documents match the filters, counted up to `most` + 1."""
        return len(self._matching(where, where_document, most + 1))

    def _matching_left(self, request: Delete, doomed: dict[str, None]) -> list[str]:
        """The documents `request`'s filters match that are not `doomed` already; refused when more
        than its `most` are."""
        # Among the first most + 1 + len(doomed) matches, at least most + 1 are not doomed, if there are.
        matching = self._matching(request.where, request.where_document, request.most + 1 + len(doomed))
        found = [id_ for id_ in matching if id_ not in doomed]
        if len(found) > request.most:
            raise PlanLimitExceeded(
                f"the filter matches more than {request.most} documents, the plan's most per request; nothing "
                "was deleted: narrow the filter, or delete by ids in pages (POST /list/)",
                field="where" if request.where else "where_document",
            )
        return found

    def _matching(self, where: Filter | None, where_document: Filter | None, most: int) -> list[str]:
        """The ids of up to `most` documents matching the filters."""
        with filter_errors(where, where_document):
            return self._collection.get(**filter_args(where, where_document), limit=most, include=[])["ids"]

    def _delete_found(self, found: list[str]) -> None:
        """Delete these existing ids everywhere they live. Holds the write lock."""
        self._check_disk()  # a delete is a write too: chromadb logs it, then applies it
        with self._keywords_follow(found), storage_errors():
            self._collection.delete(ids=found)
        with storage_errors():
            self.chunks.delete(found)
        self.vectors.drop(found)

    def snapshot(self, destination: Path) -> SnapshotManifest:
        """A consistent copy of the tenant's data in `destination` (storage.snapshot); returns its
        manifest. Refused when the volume would be left short of room; the oldest snapshots past
        SNAPSHOTS_KEPT are removed once it is complete."""
        settings = self._settings
        destination.parent.mkdir(parents=True, exist_ok=True)
        snapshot.check_room(settings.data_dir, destination)
        with self._write_lock:
            manifest: SnapshotManifest = {
                "tenant_id": settings.tenant_id,
                "collection": settings.collection_name,
                "model_name": settings.model_name,
                "dimension": settings.dimension,
                "vectors": settings.vectors,
                "count": self._collection.count(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            try:
                snapshot.take(settings.data_dir, destination, index_folders(settings.data_dir), manifest, self.vectors)
            except (OSError, sqlite3.Error) as exc:
                raise StorageUnavailable(f"the snapshot could not be written ({exc}); nothing was kept") from None
            # Under the lock: no other snapshot is half-written (.partial) meanwhile.
            for removed in snapshot.prune(settings):
                logger.info("removed the snapshot %s (SNAPSHOTS_KEPT=%d)", removed.name, settings.snapshots_kept)
        return manifest

    def close(self) -> None:
        """Release chromadb's and tantivy's files and threads (the process's exit does the same)."""
        self.keywords.close()
        self.vectors.close()
        cast(Client, self._client).close()  # the concrete client has close(); the ClientAPI type lacks it


def raised(outcome: T | Exception) -> T:
    """One request's outcome of a shared write: its answer, or its error raised."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _write_groups(requests: list[W]) -> Iterator[list[W]]:
    """The requests in order, cut into runs that one write can carry: a run ends before a request
    that shares an id with it (the later must be written after the earlier) or would take it past
    GROUP_DOCUMENTS documents."""
    group: list[W] = []
    ids: set[str] = set()
    size = 0
    for request in requests:
        if group and (not ids.isdisjoint(request.ids) or size + request.size > GROUP_DOCUMENTS):
            yield group
            group, ids, size = [], set(), 0
        group.append(request)
        ids.update(request.ids)
        size += request.size
    if group:
        yield group


def _joined(requests: list[Upsert]) -> Upsert:
    """Several requests (no id in common) as one."""
    if len(requests) == 1:
        return requests[0]
    return Upsert(
        [id_ for request in requests for id_ in request.ids],
        [text for request in requests for text in request.texts],
        np.concatenate([request.vectors for request in requests]),
        [metadata for request in requests for metadata in request.metadatas],
        [flag for request in requests for flag in (request.supplied or [False] * len(request.ids))],
        [cut for request in requests for cut in (request.chunks or [None] * len(request.ids))],
    )
