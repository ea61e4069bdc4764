"""Haystack 2 on a chromedb-instance: `ChromedbDocumentStore` (Haystack's DocumentStore protocol) and
two retrievers, over `chromedb_client.Client`. An optional part of the client: it needs haystack-ai
(`pip install haystack-ai==3.4.1`), which the service, the rest of the client and the CLI never import.

    from haystack import Document
    from chromedb_client.haystack import ChromedbDocumentStore, ChromedbTextRetriever

    store = ChromedbDocumentStore("http://tenant:8000")  # the key from $CHROMEDB_API_KEY, else $API_KEY
    store.write_documents([Document(content="The cat sat on the mat.", meta={"page": 3})])
    ChromedbTextRetriever(store, mode="hybrid").run(query="pets resting on rugs")["documents"]

What the service cannot hold or ask is refused, never silently changed:

- A document is text: `content` is required; a `blob` or a `sparse_embedding` is refused. Its
  `embedding`, if it has one, is sent as its vector (the instance's DIMENSION numbers); without one
  the service embeds the content.
- Metadata values are strings, numbers and booleans. None, a list or a dict raises ValueError naming
  the document and the key; with `unsupported_meta="json"` it is stored as its compact JSON text
  instead (`[1, 2]` as "[1,2]", None as "null") and read back as that string.
- Filters are translated into the service's `where` (`to_where`); one it cannot express raises
  Haystack's FilterError saying why.
"""

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

try:
    import numpy
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.document_stores.errors import DuplicateDocumentError
    from haystack.document_stores.types import DuplicatePolicy, FilterPolicy, apply_filter_policy
    from haystack.errors import FilterError
    from haystack.utils import Secret
except ImportError as error:  # the client itself runs without Haystack: say what this module needs
    raise ImportError("chromedb_client.haystack needs Haystack 2: pip install haystack-ai==3.4.1") from error

import httpx

from chromedb_client.client import ApiError, Client, Include, Mode
from chromedb_client.client import Document as StoredDocument

__all__ = [
    "ChromedbDocumentStore",
    "ChromedbEmbeddingRetriever",
    "ChromedbTextRetriever",
    "to_where",
]

# The service's where, or a constant for a filter that decides every document alike (`in []`, `> None`):
# True matches every document, False none. Constants are folded away; only a where is ever sent.
Where = dict[str, Any]
Translated = Where | bool

RANGE_OPERATORS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
COMPARISON_OPERATORS = ("==", "!=", *RANGE_OPERATORS, "in", "not in")
MAX_BATCH = 256  # documents per request at most, whatever the plan allows (as the CLI's import): retries stay small
DEFAULT_API_KEY_VARIABLES = ["CHROMEDB_API_KEY", "API_KEY"]  # API_KEY is what the CLI reads


# --- filters ----------------------------------------------------------------------------------


def to_where(filters: Mapping[str, Any]) -> Translated:
    """Haystack 2 filters as the service's `where` (chromadb's grammar), or True (every document) or
    False (none) where the filter decides every document alike. Raises FilterError for what the
    service cannot ask:

    - fields other than `meta.<key>` (id, content, embedding, score);
    - `== None`, `!= None`, `in [None, ...]`: asking whether a document has a key (the service
      stores no None values, and its filter cannot test for a key's presence);
    - `>`, `>=`, `<`, `<=` on anything but a number (Haystack compares ISO date strings; the
      service compares numbers only: store dates as numbers, e.g. Unix seconds);
    - a range comparison under NOT: its negation would have to match documents without the key.

    NOT is pushed down to the comparisons (chromadb has no $not): NOT(a AND b) is (NOT a) OR (NOT b),
    `==` becomes `$ne`, `in` `$nin`, which like Haystack's `!=` and `not in` match documents
    without the key. An `in` list of mixed types becomes one `$in` per type (chromadb's lists hold
    one type). A comparison with None is false for every document, as in Haystack. Numbers compare
    as numbers (2 matches 2.0); booleans are not numbers (True does not match 1, unlike Python's ==);
    strings compare exactly (Haystack's == also matches two spellings of one ISO date).
    """
    return _translate(filters, negated=False)


def _translate(node: object, negated: bool) -> Translated:
    if not isinstance(node, Mapping):
        raise FilterError(f"a filter must be a dict, not {type(node).__name__}: {node!r}")
    if "field" in node:
        return _comparison(node, negated)
    for key in ("operator", "conditions"):
        if key not in node:
            raise FilterError(f"'{key}' key missing in {dict(node)}")
    operator, conditions = node["operator"], node["conditions"]
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list of filters, not {type(conditions).__name__}")
    if operator == "NOT":  # Haystack's NOT negates the AND of its conditions
        operator, negated = "AND", not negated
    if operator not in ("AND", "OR"):
        raise FilterError(f"unknown logical operator {operator!r}: one of AND, OR, NOT")
    parts = [_translate(condition, negated) for condition in conditions]
    # De Morgan: under negation an AND becomes the OR of the negated parts, and an OR an AND.
    return _all_of(parts) if (operator == "AND") != negated else _any_of(parts)


def _all_of(parts: list[Translated]) -> Translated:
    if any(part is False for part in parts):
        return False
    wheres = [part for part in parts if not isinstance(part, bool)]
    if not wheres:
        return True
    return wheres[0] if len(wheres) == 1 else {"$and": wheres}  # the service's $and takes two or more


def _any_of(parts: list[Translated]) -> Translated:
    if any(part is True for part in parts):
        return True
    wheres = [part for part in parts if not isinstance(part, bool)]
    if not wheres:
        return False
    return wheres[0] if len(wheres) == 1 else {"$or": wheres}


def _comparison(node: Mapping[str, Any], negated: bool) -> Translated:
    for key in ("operator", "value"):
        if key not in node:
            raise FilterError(f"'{key}' key missing in {dict(node)}")
    field, operator, value = node["field"], node["operator"], node["value"]
    if operator not in COMPARISON_OPERATORS:
        raise FilterError(f"unknown comparison operator {operator!r}: one of {', '.join(COMPARISON_OPERATORS)}")
    key = _metadata_key(field)
    condition = f"{field} {operator} {value!r}"
    if operator in ("==", "!="):
        _filter_scalar(value, condition)
        return {key: {"$eq" if (operator == "==") != negated else "$ne": value}}
    if operator in ("in", "not in"):
        if not isinstance(value, list):
            raise FilterError(f"{condition}: '{operator}' takes a list of values, not {type(value).__name__}")
        for member in value:
            _filter_scalar(member, condition)
        return _membership(key, value, member=(operator == "in") != negated)
    if value is None:  # Haystack: an ordering comparison with None is false for every document
        return negated
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FilterError(
            f"{condition}: the service compares finite numbers only, not {_kind(value)}"
            + (
                " (store dates as numbers, e.g. Unix seconds, to filter them by range)"
                if isinstance(value, str)
                else ""
            )
        )
    if negated:
        raise FilterError(
            f"NOT ({condition}) cannot be expressed: it would have to match documents without the key "
            f"{key!r}, and the service's filter cannot ask for a key's absence; write the opposite range instead"
        )
    return {key: {RANGE_OPERATORS[operator]: value}}


def _membership(key: str, values: list[Any], member: bool) -> Translated:
    """`key in values` (member) or `key not in values`, as one $in or $nin per type of value."""
    if not values:  # in [] matches no document, not in [] every one
        return not member
    by_kind: dict[type, list[Any]] = {}
    for value in values:
        by_kind.setdefault(type(value), []).append(value)
    parts: list[Translated] = [{key: {"$in" if member else "$nin": group}} for group in by_kind.values()]
    return _any_of(parts) if member else _all_of(parts)


def _metadata_key(field: object) -> str:
    if not isinstance(field, str) or not field.startswith("meta.") or field == "meta.":
        raise FilterError(
            f"field {field!r}: the service filters on metadata only, named 'meta.<key>' "
            "(id, content, embedding and score cannot be filtered)"
        )
    return field.removeprefix("meta.")


def _filter_scalar(value: object, condition: str) -> None:
    if value is None:
        raise FilterError(
            f"{condition}: a comparison with None asks whether a document has the key; the service stores no "
            "None values and its filter cannot test for a key's presence"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{condition}: NaN and infinity cannot be compared")
    if not isinstance(value, str | int | float):  # bool is an int
        raise FilterError(f"{condition}: compares a string, number or boolean, not {_kind(value)}")


def _kind(value: object) -> str:
    if value is None:
        return "None"
    return "a boolean" if isinstance(value, bool) else f"a {type(value).__name__}"


@contextlib.contextmanager
def _filter_refusals() -> Iterator[None]:
    """A filter the service refused (a 422 naming `where`) raised as Haystack's FilterError; other errors as is."""
    try:
        yield
    except ApiError as error:
        if error.status == 422 and (error.field or "").startswith("where"):
            raise FilterError(f"the service refused the filter: {error.message}") from error
        raise


# --- the document store -------------------------------------------------------------------------


class ChromedbDocumentStore:
    """Haystack's DocumentStore protocol on a chromedb-instance tenant (one collection per tenant).

    `write_documents` sends batches sized to the tenant's plan; a batch the service refuses raises
    after the batches before it were stored. FAIL and SKIP read which ids are stored before writing
    (the service itself only upserts): a concurrent writer may store an id between that read and
    the write. DuplicatePolicy.NONE means FAIL, as in Haystack's InMemoryDocumentStore.
    `filter_documents` pages through the matching documents in the order they were first added.
    """

    def __init__(
        self,
        url: str = "http://localhost:8000",
        api_key: Secret | None = None,
        *,
        return_embedding: bool = False,
        unsupported_meta: Literal["raise", "json"] = "raise",
        timeout: float = 120.0,
        retries: int = 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """
        :param url: the instance, e.g. http://tenant:8000.
        :param api_key: the tenant's key; by default from $CHROMEDB_API_KEY, else $API_KEY, else none.
        :param return_embedding: whether `filter_documents` returns each document's stored vector
            (the model's, when it was written without one); off, pages are about 8 KB per document lighter.
        :param unsupported_meta: what a metadata value the service cannot store (None, list, dict) does:
            "raise" a ValueError naming it, or be stored as its compact JSON text ("json").
        :param transport: an httpx transport, for tests (not serialized).
        """
        self.url = url
        self.api_key = api_key or Secret.from_env_var(DEFAULT_API_KEY_VARIABLES, strict=False)
        self.return_embedding = return_embedding
        if unsupported_meta not in ("raise", "json"):
            raise ValueError(f"unsupported_meta must be 'raise' or 'json', not {unsupported_meta!r}")
        self.unsupported_meta = unsupported_meta
        self.timeout, self.retries = timeout, retries
        self.client = Client(url, self.api_key.resolve_value(), timeout=timeout, retries=retries, transport=transport)
        self._plan_limits: dict[str, int] | None = None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "ChromedbDocumentStore":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, Any]:
        # A key given as a token refuses to be serialized (Haystack's Secret): pass it by environment variable.
        return default_to_dict(
            self,
            url=self.url,
            api_key=self.api_key,
            return_embedding=self.return_embedding,
            unsupported_meta=self.unsupported_meta,
            timeout=self.timeout,
            retries=self.retries,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChromedbDocumentStore":
        return default_from_dict(cls, data)

    # --- the protocol ---------------------------------------------------------------------------

    def count_documents(self) -> int:
        return self.client.count()[0]

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """The documents matching `filters` (all without), in the order they were first added."""
        include: tuple[Include, ...] = (
            ("text", "metadata", "embedding") if self.return_embedding else ("text", "metadata")
        )
        return [_haystack_document(stored, self.return_embedding) for stored in self._matching(filters, include)]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Writes `documents`; returns how many were written (skipped ones not counted).
        Raises DuplicateDocumentError (FAIL, NONE) before anything is written when one is stored
        already or an id repeats; ValueError for a document the service cannot store."""
        if not isinstance(documents, list) or not all(isinstance(document, Document) for document in documents):
            raise ValueError("write_documents takes a list of haystack Documents")
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.FAIL
        bodies = [self._stored_form(document) for document in _one_per_id(documents, policy)]
        if policy in (DuplicatePolicy.FAIL, DuplicatePolicy.SKIP):
            stored = self._stored_ids([body["id"] for body in bodies])
            if stored and policy == DuplicatePolicy.FAIL:
                shown = ", ".join(map(repr, sorted(stored)[:5])) + (", ..." if len(stored) > 5 else "")
                raise DuplicateDocumentError(
                    f"{len(stored)} of the documents are stored already ({shown}): none written"
                )
            bodies = [body for body in bodies if body["id"] not in stored]
        for batch in self._batches(bodies):
            with _refusals_named([body["id"] for body in batch]):
                self.client.embed(batch)
        # The protocol: with OVERWRITE, every document given counts as written, an id given twice too.
        return len(documents) if policy == DuplicatePolicy.OVERWRITE else len(bodies)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Deletes these ids; ids that are not stored are ignored."""
        for batch in _chunks(list(document_ids), self._max_per_request()):
            with _refusals_named(batch):
                self.client.delete(batch)

    # --- beyond the protocol (Haystack's extended store tests) ----------------------------------

    def delete_all_documents(self) -> None:
        """Deletes every document of the tenant."""
        # Every id first, then the deletes: deleting while paging would shift the pages under the reader.
        self.delete_documents([document.id for document in self.client.iter_documents(self._page_size(), include=())])

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Deletes the documents matching `filters`; returns how many. A filter matching every
        document is refused, as the service refuses an empty delete filter: use delete_all_documents."""
        if not filters or to_where(filters) is True:
            raise FilterError("this filter matches every document: call delete_all_documents() to delete them all")
        # Ids first, then deleted by id: the service deletes by filter at most a request's worth at once.
        ids = [document.id for document in self._matching(filters, ())]
        deleted = 0
        for batch in _chunks(ids, self._max_per_request()):
            deleted += self.client.delete(batch)  # ids the service gave: none it would refuse
        return deleted

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merges `meta` into the metadata of the documents matching `filters` (their text and vector
        stay); returns how many. Read, then written: a concurrent metadata change in between is lost."""
        changes = _metadata(meta, "the update", self.unsupported_meta)
        updates = [
            {"id": document.id, "metadata": {**(document.metadata or {}), **changes}}
            for document in self._matching(filters, ("metadata",))
        ]
        for batch in _chunks(updates, self._max_per_request()):
            with _refusals_named([update["id"] for update in batch]):
                self.client.update(batch)
        return len(updates)

    def search(
        self,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        mode: Mode = "semantic",
        hybrid_weight: float | None = None,
    ) -> list[Document]:
        """The service's search (README: POST /search/) as Haystack Documents, best first, each with
        its `score` and without its vector."""
        where = to_where(filters) if filters else True
        if where is False:
            return []
        with _filter_refusals():
            hits = self.client.search(
                query,
                vector=[float(number) for number in vector] if vector is not None else None,
                top_k=top_k,
                where=None if where is True else where,
                mode=mode,
                hybrid_weight=hybrid_weight,
            )
        return [Document(id=hit.id, content=hit.text, meta=hit.metadata, score=hit.score) for hit in hits]

    # --- helpers --------------------------------------------------------------------------------

    def _matching(self, filters: dict[str, Any] | None, include: Sequence[Include]) -> Iterator[StoredDocument]:
        where = to_where(filters) if filters else True
        if where is False:
            return
        with _filter_refusals():
            yield from self.client.iter_documents(
                self._page_size(), where=None if where is True else where, include=include
            )

    def _stored_form(self, document: Document) -> dict[str, Any]:
        """The service's document for a Haystack one; ValueError for what it cannot store."""
        if not isinstance(document.content, str) or not document.content.strip():
            raise ValueError(
                f"document {document.id!r} has no text: the service stores and embeds text, so content is required"
            )
        for name in ("blob", "sparse_embedding"):
            if getattr(document, name) is not None:
                raise ValueError(
                    f"document {document.id!r} has a {name}: the service stores text, metadata and a vector"
                )
        body: dict[str, Any] = {
            "id": document.id,
            "text": document.content,
            "metadata": _metadata(document.meta, f"document {document.id!r}", self.unsupported_meta),
        }
        if document.embedding is not None:
            body["embedding"] = [float(number) for number in document.embedding]
        return body

    def _stored_ids(self, ids: list[str]) -> set[str]:
        stored: set[str] = set()
        for batch in _chunks(ids, self._max_per_request()):
            with _refusals_named(batch):
                stored.update(document.id for document in self.client.get(batch, include=()))
        return stored

    def _limits(self) -> dict[str, int]:
        if self._plan_limits is None:  # the plan's limits do not change while an instance runs
            self._plan_limits = dict(self.client.health()["limits"])
        return self._plan_limits

    def _max_per_request(self) -> int:
        return min(MAX_BATCH, self._limits()["max_docs_per_request"])

    def _page_size(self) -> int:
        return self._limits()["max_docs_per_request"]

    def _batches(self, bodies: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """Batches within the plan's documents per request and, with room for the envelope, its body size."""
        most, room = self._max_per_request(), self._limits()["max_body_bytes"] * 9 // 10
        batch: list[dict[str, Any]] = []
        size = 0
        for body in bodies:
            body_size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()) + 1
            if batch and (len(batch) == most or size + body_size > room):
                yield batch
                batch, size = [], 0
            batch.append(body)
            size += body_size
        if batch:
            yield batch


def _one_per_id(documents: list[Document], policy: DuplicatePolicy) -> list[Document]:
    """One document per id, as a request may name an id once: FAIL refuses a repeat, SKIP keeps the
    first, OVERWRITE the last."""
    chosen: dict[str, Document] = {}
    for document in documents:
        if document.id in chosen:
            if policy == DuplicatePolicy.FAIL:
                raise DuplicateDocumentError(f"the id {document.id!r} is given twice: none written")
            if policy == DuplicatePolicy.SKIP:
                continue
        chosen[document.id] = document
    return list(chosen.values())


def _metadata(meta: Mapping[Any, Any], owner: str, unsupported: Literal["raise", "json"]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise ValueError(f"{owner}: metadata key {key!r} is not a string")
        if isinstance(value, numpy.generic):  # a numpy number is a number; JSON knows only Python's
            value = value.item()
        if not isinstance(value, str | int | float):  # bool is an int
            if unsupported == "raise":
                raise ValueError(
                    f"{owner}: metadata {key!r} is {_kind(value)}; the service stores strings, numbers and booleans: "
                    "drop or convert it, or pass unsupported_meta='json' to store it as JSON text"
                )
            try:
                value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{owner}: metadata {key!r} is {_kind(value)}, which is not JSON") from error
        metadata[key] = value
    return metadata


@contextlib.contextmanager
def _refusals_named(ids: list[str]) -> Iterator[None]:
    """A document or id the service refused (a 422 at documents.N or ids.N) raised as a ValueError
    naming its id, as Haystack expects for input a store cannot take; other errors as they are."""
    try:
        yield
    except ApiError as error:
        at = re.match(r"(?:documents|ids)\.(\d+)(?:\.(.+))?$", error.field or "")
        if error.status != 422 or at is None or int(at[1]) >= len(ids):
            raise
        where = f" (at {at[2]})" if at[2] else ""
        raise ValueError(f"document {ids[int(at[1])]!r} was refused: {error.message}{where}") from error


def _haystack_document(stored: StoredDocument, with_embedding: bool) -> Document:
    return Document(
        id=stored.id,
        content=stored.text,
        meta=stored.metadata or {},
        embedding=stored.embedding if with_embedding else None,
    )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- retrievers ---------------------------------------------------------------------------------


@component
class ChromedbTextRetriever:
    """Documents for a text query, searched by the service: by meaning (`semantic`, the service embeds
    the query with the documents' model), by words (`keyword`, BM25) or both (`hybrid`, best on the
    service's evaluation). Each document's `score` is that mode's (README: Search modes)."""

    def __init__(
        self,
        document_store: ChromedbDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        mode: Mode = "hybrid",
        hybrid_weight: float | None = None,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, ChromedbDocumentStore):
            raise TypeError("document_store must be a ChromedbDocumentStore")
        self.document_store, self.filters, self.top_k = document_store, filters, top_k
        self.mode, self.hybrid_weight, self.filter_policy = mode, hybrid_weight, filter_policy

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store,
            filters=self.filters,
            top_k=self.top_k,
            mode=self.mode,
            hybrid_weight=self.hybrid_weight,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChromedbTextRetriever":
        return default_from_dict(cls, _with_filter_policy(data))

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        documents = self.document_store.search(
            query,
            top_k=top_k or self.top_k,
            filters=apply_filter_policy(self.filter_policy, self.filters, filters),
            mode=self.mode,
            hybrid_weight=self.hybrid_weight,
        )
        return {"documents": documents}


@component
class ChromedbEmbeddingRetriever:
    """Documents nearest a query vector, for pipelines that embed their queries themselves (with the
    documents' model: the instance's DIMENSION numbers). `score` is the cosine similarity."""

    def __init__(
        self,
        document_store: ChromedbDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, ChromedbDocumentStore):
            raise TypeError("document_store must be a ChromedbDocumentStore")
        self.document_store, self.filters, self.top_k, self.filter_policy = (
            document_store,
            filters,
            top_k,
            filter_policy,
        )

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store,
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChromedbEmbeddingRetriever":
        return default_from_dict(cls, _with_filter_policy(data))

    @component.output_types(documents=list[Document])
    def run(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        documents = self.document_store.search(
            vector=query_embedding,
            top_k=top_k or self.top_k,
            filters=apply_filter_policy(self.filter_policy, self.filters, filters),
        )
        return {"documents": documents}


def _with_filter_policy(data: dict[str, Any]) -> dict[str, Any]:
    """A retriever's serialized form with its filter policy as the enum again (serialized as its value)."""
    init_parameters = dict(data.get("init_parameters", {}))
    if "filter_policy" in init_parameters:
        init_parameters["filter_policy"] = FilterPolicy.from_str(init_parameters["filter_policy"])
    return {**data, "init_parameters": init_parameters}
