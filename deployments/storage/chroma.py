"""How the tenant store speaks to chromadb: the index configuration, filter arguments, the shape of
its answers, and its errors turned into ours (a full disk, a missing vector, a bad filter)."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.errors import InternalError, InvalidArgumentError

from deployments.core.errors import (
    InternalFailure,
    InvalidFilter,
    ServiceError,
    ServiceUnavailable,
    StorageUnavailable,
)
from deployments.core.types import Document, Filter, Include, Metadata
from deployments.storage.internal_metadata import public

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
# How chromadb words a regex its engine would not compile within its size limit.
REGEX_TOO_BIG = "constraint failed"

logger = logging.getLogger("ray.serve")

INCLUDED: dict[Include, str] = {"text": "documents", "metadata": "metadatas", "embedding": "embeddings"}


def rows(found: Any) -> Iterator[tuple[str, str, Metadata | None]]:
    """(id, text, metadata) of each record of a chromadb get that included documents and metadatas."""
    return zip(found["ids"], found["documents"] or [], found["metadatas"] or [], strict=True)


def filter_args(where: Filter | None, where_document: Filter | None) -> dict[str, Any]:
    """chromadb's filter arguments; an empty filter means none."""
    return {"where": where or None, "where_document": where_document or None}


def included(include: list[Include]) -> Any:
    """chromadb's names for the fields a read includes."""
    return [INCLUDED[field] for field in include]


def as_documents(found: Any, include: list[Include]) -> list[Document]:
    """chromadb's column-wise answer as one dict per document, with the fields `include` names."""
    columns = {field: found[INCLUDED[field]] for field in include}
    shown = []
    for row, id_ in enumerate(found["ids"]):
        document: dict[str, Any] = {"id": id_}
        for field, values in columns.items():
            value = values[row] if values is not None else None
            if field == "embedding" and value is not None:
                value = [float(x) for x in value]
            document[field] = public(value) if field == "metadata" else value
        shown.append(cast(Document, document))
    return shown


@contextmanager
def filter_errors(where: Filter | None, where_document: Filter | None) -> Iterator[None]:
    """A filter chromadb refuses only as it runs it (deployments.api.filters checks the grammar
    before: what is left is mostly a regex its engine cannot compile) is the tenant's error."""
    try:
        yield
    except (ValueError, TypeError, InvalidArgumentError) as exc:
        if not (where or where_document):
            raise
        about_text = where_document and (not where or "document" in str(exc) or "Regex" in str(exc))
        raise InvalidFilter(str(exc), field="where_document" if about_text else "where") from None
    except InternalError as exc:
        # chromadb 1.5.9 words a regex past its engine's compiled-size limit so (e.g. "(a{1000}){1000}").
        if not (where_document and REGEX_TOO_BIG in str(exc) and _has_regex(where_document)):
            raise
        raise InvalidFilter(
            "the regular expression is too large to compile: use fewer or smaller repetitions", field="where_document"
        ) from None


def _has_regex(where_document: Filter) -> bool:
    dumped = json.dumps(where_document)  # an operator is a key: quoted, then ": " (a value never is)
    return '"$regex": ' in dumped or '"$not_regex": ' in dumped


@contextmanager
def storage_errors() -> Iterator[None]:
    """A write the disk refused becomes a clear 507; the write is one SQLite transaction, so nothing
    of it was stored, and reads go on working from what is on disk. Any other failure inside
    chromadb's write is a 500 that says the outcome is unknown: chromadb may have committed the
    write before it failed (its log is replayed at the next start), so "nothing happened" would be
    a guess."""
    try:
        yield
    except ServiceError:
        raise
    except Exception as exc:
        if isinstance(exc, InternalError) and any(failure in str(exc) for failure in STORAGE_FAILURES):
            raise StorageUnavailable.refused(exc) from None
        logger.exception("a write failed inside chromadb")
        raise InternalFailure(
            f"the store failed during this write ({type(exc).__name__}; it was logged): it may or may not "
            "have been stored, and reading the ids back cannot tell yet (chromadb may apply a write it logged "
            "at its next start). Send it again: a write by id is safe to repeat"
        ) from None


class IndexRebuilding(ServiceUnavailable):
    """A vector was asked for while the index is being rebuilt after a crash."""


@contextmanager
def vectors_missing() -> Iterator[None]:
    """A read of vectors the index does not hold yet (storage.rebuild) becomes a 503 to retry."""
    try:
        yield
    except InternalError as exc:
        if VECTOR_MISSING not in str(exc):
            raise
        raise IndexRebuilding(
            "some of these documents' vectors are being re-indexed after a crash (GET /healthz/ shows the "
            "progress); their texts and metadata are safe: retry shortly"
        ) from None
