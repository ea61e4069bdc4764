"""The chunks of long documents (deployments.embedding.chunking): a second chromadb collection beside the
tenant's documents, so that the documents collection keeps exactly one record per document (its
count, quota, listing and filters stay about documents).

A chunked document's own record holds its whole text, its first chunk's vector and span; its other
chunks live here, each with a copy of the document's metadata (so that filters narrow chunk search
too), its parent's id, its span, and the *chunk set* token the parent records. The two collections
cannot share a transaction, so writes go: new chunks first, then the parent (which switches to the
new token in one write), then the old chunks are dropped. Search uses a chunk only if its parent
exists, passes the filters and records its token: a crash between the steps leaves chunks nobody
uses, never a wrong answer (and the next write of that document removes them).
"""

import uuid
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from chromadb.api.models.Collection import Collection

from deployments.core.types import Chunks, Metadata, Vectors
from deployments.storage.internal_metadata import CHUNK_SET, PREFIX, public, replacing_public
from deployments.storage.kept_vectors import KeptVectors, state_key
from deployments.storage.ranking import cosine_score

PARENT = f"{PREFIX}parent"
START = f"{PREFIX}start"
END = f"{PREFIX}end"
SEPARATOR = "\x1f"  # ids never contain control characters, so chunk ids cannot collide with a document's
WRITE_BATCH = 4_096  # chunks per chromadb write, under its batch limit (5,461 on this build)
# A metadata row as chromadb returns it, internal keys (PARENT, START, ...) included.
StoredRow = dict[str, Any]


def parent_metadata(metadata: Metadata, chunks: Chunks, token: str) -> Metadata:
    """What a chunked document's own record carries besides the tenant's metadata."""
    return {**metadata, CHUNK_SET: token, START: chunks.spans[0][0], END: chunks.spans[0][1]}


def span_of(metadata: Metadata | None) -> list[int] | None:
    """The [start, end] of the chunk a record stands for, or None for a document that is not chunked."""
    metadata = metadata or {}
    return [int(metadata[START]), int(metadata[END])] if CHUNK_SET in metadata else None


def owner_of(id_: str, metadata: Mapping[str, Any] | None) -> str:
    """The document a record belongs to: a chunk's parent, else the record itself."""
    return str((metadata or {}).get(PARENT, id_))


class ChunkStore:
    def __init__(self, collection: Collection, kept: KeptVectors) -> None:
        self.collection = collection
        self._kept = kept

    def write(self, ids: list[str], texts: list[str], chunks: list[Chunks], metadatas: list[Metadata]) -> list[str]:
        """Store each document's chunks after its first under a fresh token; returns the tokens."""
        tokens = [uuid.uuid4().hex for _ in ids]
        records: list[tuple[str, str, Vectors, Metadata]] = []
        for id_, text, chunked, metadata, token in zip(ids, texts, chunks, metadatas, tokens, strict=True):
            for number, ((start, end), vector) in enumerate(zip(chunked.spans, chunked.vectors, strict=True)):
                if number:
                    child = {**public(metadata), PARENT: id_, CHUNK_SET: token, START: start, END: end}
                    records.append((f"{id_}{SEPARATOR}{number}", text[start:end], vector, child))
        for first in range(0, len(records), WRITE_BATCH):
            batch = records[first : first + WRITE_BATCH]
            self._kept.keep(
                [str(r[3][PARENT]) for r in batch],
                [r[0] for r in batch],
                [state_key(r[1], r[3]) for r in batch],
                np.stack([r[2] for r in batch]),
            )
            self.collection.upsert(
                ids=[r[0] for r in batch],
                documents=[r[1] for r in batch],
                embeddings=[r[2] for r in batch],  # type: ignore[arg-type]
                metadatas=[r[3] for r in batch],
            )
        return tokens

    def drop_stale(self, ids: list[str], current: list[str]) -> None:
        """Remove the chunks of `ids` that belong to no current chunk set (all of them when unchunked)."""
        if ids and self.collection.count():
            stale = {"$and": [{PARENT: {"$in": ids}}, {CHUNK_SET: {"$nin": current or [""]}}]}
            self.collection.delete(where=cast(Any, stale))

    def delete(self, ids: list[str]) -> None:
        if ids and self.collection.count():
            self.collection.delete(where=cast(Any, {PARENT: {"$in": ids}}))

    def update_metadata(self, ids: list[str], metadatas: list[Metadata]) -> None:
        """Copy the documents' new metadata onto their chunks (search re-checks it on the parent)."""
        if not ids or not self.collection.count():
            return
        new = dict(zip(ids, metadatas, strict=True))
        found = self.collection.get(where=cast(Any, {PARENT: {"$in": ids}}), include=["metadatas"])
        if found["ids"]:
            old = cast(list[StoredRow], found["metadatas"])
            replaced = [replacing_public(m, new[m[PARENT]]) for m in old]
            self.collection.update(ids=found["ids"], metadatas=cast(Any, replaced))

    def best_spans(
        self, vectors: Vectors, candidates: int, where: dict[str, Any] | None
    ) -> list[dict[str, tuple[float, list[int], str]]]:
        """For each query vector: parent id -> (best chunk score, its span, its chunk set)."""
        # No count first (it cost 0.6-1 ms a search): an empty collection is answered with empty
        # rows, by its exact search (storage.exact_search) without asking chromadb at all.
        found = self.collection.query(
            query_embeddings=vectors, n_results=candidates, where=where or None, include=["metadatas", "distances"]
        )
        best: list[dict[str, tuple[float, list[int], str]]] = []
        for metadatas, distances in zip(
            cast(list[list[StoredRow]], found["metadatas"]), cast(list[list[float]], found["distances"]), strict=True
        ):
            per_parent: dict[str, tuple[float, list[int], str]] = {}
            for metadata, distance in zip(metadatas, distances, strict=True):
                if metadata is None:  # deleted while the query ran
                    continue
                score, parent = cosine_score(distance), metadata[PARENT]
                if parent not in per_parent or score > per_parent[parent][0]:
                    per_parent[parent] = (score, [int(metadata[START]), int(metadata[END])], metadata[CHUNK_SET])
            best.append(per_parent)
        return best
