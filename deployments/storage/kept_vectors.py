"""A durable copy of every stored vector, beside chromadb's files, so that a broken HNSW index is
rebuilt by reading the vectors back (storage.rebuild), not by running the model again.

chromadb holds vectors only in its HNSW files (a cache it writes in place without fsync, which a
kill -9 can break: storage.index_check) and in its log until those files have them. This is an
SQLite database of its own, `vectors.sqlite3` (WAL: a committed write survives the process being
killed), with one row per (record id, state key). The key names the state of the record the vector
belongs to, read from the record itself (`state_key`): the digest of the tenant's vector when they
supplied one, the chunk set's token for a chunked document and its chunks, else the digest of the
text (the model is deterministic: a text always gets that vector).

chromadb and this file cannot share a transaction, so a write goes: rows for the new states first,
then chromadb's write, then the rows of the ids' other states are dropped. Whatever a crash cuts,
the row of the state chromadb holds is there, and a lookup by the record's own key never returns a
vector of another state. A record without a row (written before this file existed: data format 1)
is embedded again by the rebuild, as it always was.
"""

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deployments.core.errors import StorageUnavailable
from deployments.core.types import Vectors
from deployments.storage.internal_metadata import CHUNK_SET, OWN_VECTOR_DIGEST

FILE = "vectors.sqlite3"
# SQLite's default limit on bound parameters is 32,766: lookups bind two per record.
LOOKUP_BATCH = 10_000

logger = logging.getLogger("ray.serve")


def vector_digest(vector: Vectors) -> str:
    return hashlib.sha256(np.asarray(vector, dtype="<f4").tobytes()).hexdigest()[:32]


def state_key(text: str, metadata: Mapping[str, Any] | None) -> str:
    """Which state of a record its vector belongs to, from what chromadb stores of the record."""
    metadata = metadata or {}
    if OWN_VECTOR_DIGEST in metadata:
        return str(metadata[OWN_VECTOR_DIGEST])
    if CHUNK_SET in metadata:
        return str(metadata[CHUNK_SET])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class KeptVectors:
    """`owner`: the document a row belongs to (a chunk's parent), so that a document's rows, its
    chunks' included, are dropped together."""

    def __init__(self, data_dir: Path) -> None:
        self._db = sqlite3.connect(data_dir / FILE, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()  # one connection, used by the writer and the rebuild's readers
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a kill -9
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vectors ("
                " id TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (id, key))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS vectors_by_owner ON vectors (owner, key)")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def keep(self, owners: Sequence[str], ids: Sequence[str], keys: Sequence[str], vectors: Vectors) -> None:
        """Store the vectors of records about to be written, in one transaction, before chromadb's
        write: a full disk refuses them (507) while nothing is stored anywhere yet."""
        rows = [
            (id_, key, owner, np.asarray(vector, dtype="<f4").tobytes())
            for owner, id_, key, vector in zip(owners, ids, keys, vectors, strict=True)
        ]
        try:
            with self._transaction() as db:
                db.executemany("INSERT OR REPLACE INTO vectors (id, key, owner, vector) VALUES (?, ?, ?, ?)", rows)
        except sqlite3.OperationalError as exc:
            raise StorageUnavailable.refused(exc) from None

    def drop_other_states(self, owners: Sequence[str], keys: Sequence[str]) -> None:
        """After chromadb's write: each document's rows (its chunks' too) of states other than `keys`."""
        self._tidy("DELETE FROM vectors WHERE owner = ? AND key != ?", list(zip(owners, keys, strict=True)))

    def drop(self, owners: Sequence[str]) -> None:
        """After chromadb's delete: every row of these documents."""
        self._tidy("DELETE FROM vectors WHERE owner = ?", [(owner,) for owner in owners])

    def _tidy(self, statement: str, rows: list[tuple[str, ...]]) -> None:
        """Rows of states chromadb no longer holds are never looked up, only wasted room: failing to
        drop them must not fail a write chromadb has committed (the next write of the id retries)."""
        try:
            with self._transaction() as db:
                db.executemany(statement, rows)
        except sqlite3.Error:
            logger.exception("could not drop %d superseded vector copies; they are dropped later", len(rows))

    def find(self, ids: Sequence[str], keys: Sequence[str]) -> list[Vectors | None]:
        """The kept vector of each (id, state key), or None where there is none."""
        found: dict[tuple[str, str], bytes] = {}
        pairs = list(zip(ids, keys, strict=True))
        with self._lock:
            for start in range(0, len(pairs), LOOKUP_BATCH):
                batch = pairs[start : start + LOOKUP_BATCH]
                values = ", ".join("(?, ?)" for _ in batch)
                flat = [value for pair in batch for value in pair]
                query = f"SELECT id, key, vector FROM vectors WHERE (id, key) IN (VALUES {values})"
                found.update(((id_, key), vector) for id_, key, vector in self._db.execute(query, flat))
        return [np.frombuffer(found[pair], dtype="<f4").astype(np.float32) if pair in found else None for pair in pairs]

    def backup(self, destination: Path) -> None:
        """A consistent copy into `destination` (a snapshot's folder)."""
        target = sqlite3.connect(destination / FILE)
        try:
            with self._lock:
                self._db.backup(target)
        finally:
            target.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()
