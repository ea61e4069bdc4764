"""Giving stored records their vectors back after a broken index was moved aside
(storage.index_check), from the copies storage.kept_vectors holds; and keeping a copy of every
vector of a folder written before those copies existed (data format 1: storage.data_format). The
ChromaStore deployment drives both, page by page in the background, re-embedding with the Embedder
only a record that has no copy; this module reads what is missing and writes it back, never over
a newer write."""

import logging
import threading
from pathlib import Path
from typing import cast

from chromadb.api.models.Collection import Collection

from deployments.core.types import Vectors
from deployments.storage import data_format
from deployments.storage.chroma import IndexRebuilding, rows, storage_errors, vectors_missing
from deployments.storage.chunk_store import owner_of
from deployments.storage.index_check import REBUILD_MARKER
from deployments.storage.internal_metadata import own_vector, supplied_vector
from deployments.storage.kept_vectors import FILE as KEPT_FILE
from deployments.storage.kept_vectors import KeptVectors, state_key

logger = logging.getLogger("ray.serve")


class IndexRebuild:
    """`collections`: the ones a rebuild walks, in order (documents, then chunks); `write_lock`: the
    tenant store's, so a restore and a write never interleave; the marker file in `data_dir` says
    a rebuild is due (kept on disk, so a restart in the middle of a rebuild resumes it)."""

    def __init__(
        self,
        collections: dict[str, Collection],
        kept: KeptVectors,
        write_lock: threading.Lock,
        data_dir: Path,
        format_version: int,
    ) -> None:
        self.collections = collections
        self._kept = kept
        self._write_lock = write_lock
        self._data_dir = data_dir
        self.upgrading = format_version < data_format.CURRENT

    @property
    def pending(self) -> bool:
        """True from the moment a broken index is found until every stored text has its vector again."""
        return (self._data_dir / REBUILD_MARKER).exists()

    def ids(self, collection: str) -> list[str]:
        return self.collections[collection].get(include=[])["ids"]

    def texts_without_vectors(
        self, ids: list[str], collection: str
    ) -> tuple[list[str], list[str], list[Vectors | None]]:
        """(ids, texts, kept vectors) of the stored records among `ids`, or none when all their
        vectors are indexed; a kept vector is the copy of the record's vector (the tenant's or the
        model's), None where there is none (it is re-embedded). chromadb only says that some vector
        is missing, so a batch is all or nothing."""
        records = self.collections[collection]
        try:
            with vectors_missing():
                records.get(ids=ids, include=["embeddings"])
            return [], [], []
        except IndexRebuilding:
            found = records.get(ids=ids, include=["documents", "metadatas"])
            found_ids, texts = found["ids"], cast(list[str], found["documents"])
            metadatas = found["metadatas"] or []
            copies = self._kept.find(found_ids, [state_key(t, m) for t, m in zip(texts, metadatas, strict=True)])
            # A format-1 folder kept only the tenant's vectors, in their metadata.
            kept = [own_vector(m) if v is None else v for v, m in zip(copies, metadatas, strict=True)]
            if lost := sum(v is None and supplied_vector(m) for v, m in zip(kept, metadatas, strict=True)):
                logger.error(
                    "%d documents whose vectors the tenant supplied have no kept copy (was %s removed?): "
                    "they get the model's vector of their text; send them again with their vectors",
                    lost,
                    KEPT_FILE,
                )
            return found_ids, texts, kept

    def restore_vectors(self, ids: list[str], texts: list[str], vectors: Vectors, collection: str) -> int:
        """Index the vectors of records whose text is still the one embedded (a document
        replaced or deleted meanwhile already has its new state), keeping a copy of each; returns
        how many were restored."""
        row_of = {id_: row for row, id_ in enumerate(ids)}
        records = self.collections[collection]
        with self._write_lock:
            found = records.get(ids=ids, include=["documents", "metadatas"])
            still = [(id_, row_of[id_], metadata) for id_, text, metadata in rows(found) if text == texts[row_of[id_]]]
            if still:
                kept_ids, kept_rows, metadatas = (list(column) for column in zip(*still, strict=True))
                kept_texts = [texts[row] for row in kept_rows]
                self._kept.keep(
                    [owner_of(id_, metadata) for id_, metadata in zip(kept_ids, metadatas, strict=True)],
                    kept_ids,
                    [state_key(text, metadata) for text, metadata in zip(kept_texts, metadatas, strict=True)],
                    vectors[kept_rows],
                )
                with storage_errors():
                    records.upsert(ids=kept_ids, embeddings=vectors[kept_rows])
            return len(still)

    def keep_indexed(self, ids: list[str], collection: str) -> int:
        """The upgrade from data format 1: keep a copy of the indexed vectors of `ids` (under the
        write lock, so that no write's newer state is overtaken). Returns how many were kept."""
        with self._write_lock:
            found = self.collections[collection].get(ids=ids, include=["documents", "metadatas", "embeddings"])
            texts, metadatas = cast(list[str], found["documents"]), found["metadatas"] or []
            if found["ids"]:
                self._kept.keep(
                    [owner_of(id_, metadata) for id_, metadata in zip(found["ids"], metadatas, strict=True)],
                    found["ids"],
                    [state_key(text, metadata) for text, metadata in zip(texts, metadatas, strict=True)],
                    cast(Vectors, found["embeddings"]),
                )
            return len(found["ids"])

    def finish(self) -> None:
        """Every stored record has its vector indexed, and a copy kept."""
        if self.upgrading:
            data_format.mark(self._data_dir, data_format.CURRENT)
            self.upgrading = False
        (self._data_dir / REBUILD_MARKER).unlink(missing_ok=True)
