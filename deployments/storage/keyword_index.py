"""The tenant's keyword (BM25) index: tantivy, in the tenant's folder, kept in step with chromadb.

Chosen by measurement (README: Retrieval quality): on SciFact, tantivy, bm25s and SQLite FTS5 score
alike (nDCG@10 68.2-68.7), but at 100,000 documents a tantivy query takes about 1 ms against FTS5's
100 ms, an upsert-and-commit 8 ms against 67 ms, and bm25s cannot update an index in place.

chromadb and tantivy cannot share a transaction, so every write is bracketed: the ids about to
change are marked *pending* first (a row each in `pending.sqlite3` in the index's folder), chromadb
writes, then this index takes the ids' texts as chromadb now holds them in one commit, and the
marks are cleared. A crash in between leaves the marks, and the next write or start re-reads those
ids from chromadb. The marks used to be a document of the index itself, which cost a tantivy commit
of their own: about 30 ms of wall time a write under the soak's load, as much as chromadb's upsert,
against 0.3 ms for an SQLite commit (fsynced, as tantivy's was). An index that is missing or
unreadable, or whose ids are not chromadb's (it missed writes: restored from an older copy, say), is
brought in step at start from the stored texts.
"""

import json
import logging
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

import tantivy

from deployments.core.errors import StorageUnavailable

logger = logging.getLogger("ray.serve")

MARKS_FILE = "pending.sqlite3"  # in the index's folder: tantivy leaves files it did not make alone
# The id of the marks' document in indexes written before MARKS_FILE: adopted at open. Ids never
# contain control characters (schemas.DocumentId), so it cannot collide with a tenant's.
PENDING_ID = "\x00pending"
# tantivy's own English analyzer: lower-cased, stop words kept, Porter-stemmed (README).
TOKENIZER = "en_stem"
WRITER_HEAP_BYTES = 32_000_000  # tantivy's in-memory buffer before it writes a segment
WORD = re.compile(r"\w+")

# id -> text as chromadb holds it now; ids it does not hold are absent.
TextLookup = Callable[[list[str]], dict[str, str]]


class KeywordIndex:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._schema = _schema()
        self._index = self._open()
        self._writer = self._index.writer(WRITER_HEAP_BYTES, 1)
        self._marks = self._open_marks()  # after _open: it may have emptied the folder
        self._adopt_legacy_marks()

    def _open(self) -> tantivy.Index:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            return tantivy.Index(self._schema, path=str(self.folder), reuse=True)
        except ValueError as exc:  # unreadable or another schema: it is only derived data
            logger.error("keyword index in %s is unreadable (%s): rebuilding it", self.folder, exc)
            shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True)
            return tantivy.Index(self._schema, path=str(self.folder), reuse=False)

    def _open_marks(self) -> sqlite3.Connection:
        path = self.folder / MARKS_FILE
        try:
            return _connect_marks(path)
        except sqlite3.DatabaseError as exc:
            # Which ids were pending is lost, so every id is: emptied, the index is brought in step
            # from the stored texts at start (TenantStore), as a lost index is.
            logger.error("the keyword index's pending marks %s are unreadable (%s): rebuilding the index", path, exc)
            for leftover in self.folder.glob(MARKS_FILE + "*"):  # the database and its WAL files
                leftover.unlink()
            self._writer.delete_all_documents()
            self._commit()
            return _connect_marks(path)

    def _adopt_legacy_marks(self) -> None:
        """Marks an index written before MARKS_FILE holds as a document of its own (a crash left
        them) become rows of MARKS_FILE, first, then leave the index: the next sync repairs them."""
        legacy = [id_ for doc in self._pending_docs() for id_ in json.loads(doc["pending"][0])]
        if legacy:
            self.mark_pending(legacy)
            self._writer.delete_documents_by_term("id", PENDING_ID)
            self._commit()

    def ids(self) -> list[str]:
        """Every indexed document's id (about 0.2 s per 100,000 here)."""
        searcher = self._index.searcher()
        hits = searcher.search(tantivy.Query.all_query(), max(1, searcher.num_docs)).hits
        return [searcher.doc(address)["id"][0] for _, address in hits]

    def pending(self) -> list[str]:
        """Ids whose write may have happened in chromadb and not here (a crash in between)."""
        return [id_ for (id_,) in self._marks.execute("SELECT id FROM pending")]

    def mark_pending(self, ids: list[str]) -> None:
        """The first step of every write: if this fails, nothing has been written anywhere."""
        try:
            with self._marks:  # one transaction, committed (and fsynced) on leaving
                self._marks.executemany("INSERT OR IGNORE INTO pending (id) VALUES (?)", [(id_,) for id_ in ids])
        except sqlite3.Error as exc:  # the disk refused it (full, read-only)
            raise StorageUnavailable.refused(exc) from None

    def sync_pending(self, lookup: TextLookup) -> None:
        """Make every pending id match chromadb (its text, or its absence) and clear the marks."""
        ids = self.pending()  # each id once: the primary key
        if not ids:
            return
        texts = lookup(ids)
        for id_ in ids:
            self._writer.delete_documents_by_term("id", id_)
        for id_, text in texts.items():
            self._writer.add_document(tantivy.Document(id=id_, body=text))
        self._commit()
        # Only once the index holds them: a crash before this leaves marks that the next sync redoes.
        with self._marks:
            self._marks.executemany("DELETE FROM pending WHERE id = ?", [(id_,) for id_ in ids])

    def rebuild(self, documents: Iterable[tuple[str, str]]) -> None:
        self._writer.delete_all_documents()
        for id_, text in documents:
            self._writer.add_document(tantivy.Document(id=id_, body=text))
        self._commit()

    def search(self, text: str, limit: int, allowed: list[str] | None = None) -> list[tuple[str, float]]:
        """(id, BM25 score) of the best `limit` documents for the words of `text`, best first;
        only among `allowed` ids when given (a metadata filter chromadb resolved)."""
        words = WORD.findall(text.lower())  # plain words: no query syntax reaches tantivy
        if not words or allowed == []:
            return []
        query = self._index.parse_query(" ".join(words), ["body"])
        if allowed is not None:
            query = tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Must, query),
                    (tantivy.Occur.Must, tantivy.Query.term_set_query(self._schema, "id", allowed)),
                ]
            )
        searcher = self._index.searcher()
        return [(searcher.doc(address)["id"][0], score) for score, address in searcher.search(query, limit).hits]

    def close(self) -> None:
        self._writer.wait_merging_threads()
        self._marks.close()

    def _pending_docs(self) -> list[tantivy.Document]:
        searcher = self._index.searcher()
        query = tantivy.Query.term_query(self._schema, "id", PENDING_ID)
        return [searcher.doc(address) for _, address in searcher.search(query, 1_000).hits]

    def _commit(self) -> None:
        self._writer.commit()
        self._index.reload()


def _connect_marks(path: Path) -> sqlite3.Connection:
    """The pending marks' database. Used by the store's writer thread only, one write at a time."""
    marks = sqlite3.connect(path, check_same_thread=False)
    marks.execute("PRAGMA journal_mode=WAL")
    marks.execute("PRAGMA synchronous=FULL")  # a mark is on disk before chromadb's write begins
    marks.execute("CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY)")
    return marks


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name=TOKENIZER)
    builder.add_text_field("pending", stored=True, tokenizer_name="raw")
    return builder.build()
