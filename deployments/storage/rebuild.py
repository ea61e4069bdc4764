"""Giving stored records their vectors back after a broken index was moved aside
(storage.index_check). The ChromaStore deployment drives it, re-embedding with the Embedder; this
module reads what is missing and writes the vectors back, never over a newer write."""

import threading
from pathlib import Path
from typing import cast

from chromadb.api.models.Collection import Collection

from deployments.core.types import Vectors
from deployments.storage.chroma import IndexRebuilding, rows, storage_errors, vectors_missing
from deployments.storage.internal_metadata import own_vector


class IndexRebuild:
    """`collections`: the ones a rebuild walks, in order (documents, then chunks); `write_lock`: the
    tenant store's, so a restore and a write never interleave; `marker`: the file that says a rebuild
    is due (kept on disk, so a restart in the middle of a rebuild resumes it)."""

    def __init__(self, collections: dict[str, Collection], write_lock: threading.Lock, marker: Path) -> None:
        self.collections = collections
        self._write_lock = write_lock
        self._marker = marker

    @property
    def pending(self) -> bool:
        """True from the moment a broken index is found until every stored text has its vector again."""
        return self._marker.exists()

    def ids(self, collection: str) -> list[str]:
        return self.collections[collection].get(include=[])["ids"]

    def texts_without_vectors(
        self, ids: list[str], collection: str
    ) -> tuple[list[str], list[str], list[Vectors | None]]:
        """(ids, texts, supplied vectors) of the stored records among `ids`, or none when all
        their vectors are indexed; a supplied vector is the tenant's own (None: the model's). chromadb
        only says that some vector is missing, so a batch is all or nothing."""
        records = self.collections[collection]
        try:
            with vectors_missing():
                records.get(ids=ids, include=["embeddings"])
            return [], [], []
        except IndexRebuilding:
            found = records.get(ids=ids, include=["documents", "metadatas"])
            supplied = [own_vector(metadata) for metadata in found["metadatas"] or []]
            return found["ids"], cast(list[str], found["documents"]), supplied

    def restore_vectors(self, ids: list[str], texts: list[str], vectors: Vectors, collection: str) -> int:
        """Index the vectors of records whose text is still the one embedded (a document
        replaced or deleted meanwhile already has its new state); returns how many were restored."""
        row_of = {id_: row for row, id_ in enumerate(ids)}
        records = self.collections[collection]
        with self._write_lock:
            found = records.get(ids=ids, include=["documents", "metadatas"])
            still = [(id_, row_of[id_], metadata) for id_, text, metadata in rows(found) if text == texts[row_of[id_]]]
            if still:
                kept_ids, kept_rows, metadatas = zip(*still, strict=True)
                with storage_errors():
                    records.upsert(
                        ids=list(kept_ids),
                        embeddings=vectors[list(kept_rows)],
                        documents=[texts[row] for row in kept_rows],
                        metadatas=list(metadatas),
                    )
            return len(still)

    def finish(self) -> None:
        self._marker.unlink(missing_ok=True)
