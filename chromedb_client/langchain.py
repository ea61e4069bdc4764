"""A LangChain `VectorStore` over a chromedb-instance, built on `chromedb_client.Client`.

Optional: it needs `pip install langchain-core==1.8.1`, which neither the service nor the client
installs; `import chromedb_client` never imports it.

    from chromedb_client import Client
    from chromedb_client.langchain import ChromedbVectorStore

    store = ChromedbVectorStore(Client("http://tenant:8000", api_key=KEY))
    store.add_texts(["The cat sat on the mat."], metadatas=[{"source": "notes", "page": 3}])
    store.similarity_search("pets resting on rugs", k=3, filter={"page": {"$gte": 2}})
    retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"source": "notes"}})

By default the service's own model embeds both the stored texts and the queries (texts are sent,
vectors never leave the service). Given a LangChain `Embeddings`, the store embeds on the caller's
side and sends vectors instead: documents with `embedding`, searches with `vector`; they must have
the service's `DIMENSION` and come from a model compatible with the one the collection holds.

Metadata values must be what the service stores: strings, finite numbers (integers within 64 bits)
and booleans. A None, a list or a nested dict raises `ValueError` naming the document and the key
before anything is sent, rather than being dropped or stringified behind the caller's back: drop
such keys or convert them yourself (`json.dumps` for a list or a dict).
"""

import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

from chromedb_client.client import Client, Filter, Hit

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as missing:  # an optional integration: say how to get it rather than a bare ModuleNotFoundError
    raise ImportError(
        "chromedb_client.langchain needs LangChain's core package: pip install langchain-core==1.8.1"
    ) from missing

__all__ = ["ChromedbVectorStore", "check_metadata"]

# Every plan takes at least 256 documents (or ids) per request (README: Plans), so batches of this
# size are never refused for their length; a larger plan may pass a larger batch_size.
DEFAULT_BATCH_SIZE = 256
# Metadata keys the service keeps for itself (deployments/storage/internal_metadata.py).
RESERVED_KEY_PREFIXES = ("chroma:", "#", "$", "_cdbi:")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_KIND_NAMES = {type(None): "None", list: "a list", tuple: "a tuple", dict: "a dict"}

Item = TypeVar("Item")


def check_metadata(metadata: Mapping[Any, Any] | None, document: str) -> dict[str, str | bool | int | float]:
    """The metadata as the service will take it, or ValueError naming `document` and the key it
    refuses. Values: strings, booleans, integers within 64 bits and finite floats, unchanged."""
    checked: dict[str, str | bool | int | float] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{document}: metadata keys must be non-empty strings, not {key!r}")
        if key.startswith(RESERVED_KEY_PREFIXES):
            raise ValueError(
                f"{document}: metadata key {key!r} is reserved by the service "
                f"(keys may not start with {' or '.join(map(repr, RESERVED_KEY_PREFIXES))})"
            )
        if _storable(value):
            checked[key] = value
        elif isinstance(value, int | float):
            raise ValueError(
                f"{document}: metadata key {key!r} holds {value!r}: numbers must be finite, integers within 64 bits"
            )
        else:
            kind = _KIND_NAMES.get(type(value), type(value).__name__)
            raise ValueError(
                f"{document}: metadata key {key!r} holds {kind}; the service stores only strings, numbers and "
                "booleans: drop the key or convert its value (json.dumps for a list or a dict)"
            )
    return checked


def _storable(value: object) -> bool:
    if isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX  # chromadb stores integers in 64 bits
    return isinstance(value, float) and math.isfinite(value)


def similarity_as_relevance(similarity: float) -> float:
    """LangChain's relevance is 0 (unrelated) to 1 (the same): the service's cosine similarity
    already is that for related texts; opposite directions (below 0) count as unrelated."""
    return min(max(similarity, 0.0), 1.0)


class ChromedbVectorStore(VectorStore):
    """LangChain's `VectorStore` over one tenant of a chromedb-instance.

    `client`: a `chromedb_client.Client` (it retries what the service calls temporary).
    `embedding`: None (the default) lets the service's model embed texts and queries; a LangChain
    `Embeddings` embeds them here and sends the vectors.
    `batch_size`: documents or ids per request; at most the plan's `max_docs_per_request`. A call
    with more than one batch is not atomic: a batch the service refuses (quota, say) leaves the
    batches before it stored. What can be checked here (metadata, blank texts, duplicate ids) is
    checked for every document before the first request.
    """

    def __init__(
        self, client: Client, embedding: Embeddings | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.client = client
        self._embedding = embedding
        self.batch_size = batch_size

    @property
    def embeddings(self) -> Embeddings | None:
        """The caller's embeddings, or None when the service's model embeds."""
        return self._embedding

    # --- writes -------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add or replace (by id) texts; returns their ids, in order. A missing id (None, or no
        `ids` at all) gets a fresh uuid4 hex; an existing id is replaced whole (text, vector and
        metadata). Raises ValueError, before any request, for metadata the service refuses (see
        the module's docstring), a blank text or an id given twice."""
        _no_other_arguments("add_texts", kwargs)
        text_list = list(texts)
        if metadatas and len(metadatas) != len(text_list):
            raise ValueError(f"{len(metadatas)} metadatas for {len(text_list)} texts: give one per text")
        if ids and len(ids) != len(text_list):
            raise ValueError(f"{len(ids)} ids for {len(text_list)} texts: give one per text (None to generate one)")
        given = ids or [None] * len(text_list)
        final_ids = [id_ or uuid.uuid4().hex for id_ in given]
        documents: list[dict[str, Any]] = []
        seen: set[str] = set()
        for position, (id_, text) in enumerate(zip(final_ids, text_list, strict=True)):
            name = f"document {position} (id {id_!r})"
            if id_ in seen:
                raise ValueError(f"{name}: the id is given twice; each document needs its own")
            seen.add(id_)
            if not text.strip():
                raise ValueError(f"{name}: the text is empty or only whitespace, which the service refuses")
            metadata = check_metadata(metadatas[position] if metadatas else None, name)
            documents.append({"id": id_, "text": text, "metadata": metadata})
        for batch in _batches(documents, batch_size or self.batch_size):
            self.client.embed(_with_vectors(self._embedding, batch) if self._embedding is not None else batch)
        return final_ids

    def delete(
        self,
        ids: list[str] | None = None,
        *,
        filter: Filter | None = None,
        where_document: Filter | None = None,
        **kwargs: Any,
    ) -> bool:
        """Delete by ids (unknown ids are no error), or everything matching `filter` (the
        service's `where`) and/or `where_document`. Never everything: with neither, ValueError."""
        _no_other_arguments("delete", kwargs)
        if ids is not None:
            for batch in _batches(ids, self.batch_size):
                self.client.delete(batch)
            return True
        if not filter and not where_document:
            raise ValueError("give ids or a filter: this store does not delete every document at once")
        self.client.delete(where=filter, where_document=where_document)
        return True

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        client: Client | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> Self:
        """A store on `client` (required) holding `texts`; `embedding` None lets the service embed."""
        _no_other_arguments("from_texts", kwargs)
        if client is None:
            raise TypeError("from_texts needs client=chromedb_client.Client(url, api_key=...)")
        store = cls(client, embedding, batch_size=batch_size)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # --- reads --------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents stored under `ids`, in the order asked; unknown ids are left out."""
        found: list[Document] = []
        for batch in _batches(list(ids), self.batch_size):
            for stored in self.client.get(batch, include=("text", "metadata")):
                found.append(Document(id=stored.id, page_content=stored.text or "", metadata=stored.metadata or {}))
        return found

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        *,
        where_document: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The `k` documents closest in meaning to `query`, best first; `filter` is the service's
        `where` (chromadb's operators: `{"page": {"$gte": 2}}`), `where_document` filters on the text."""
        _no_other_arguments("similarity_search", kwargs)
        hits = self.similarity_search_with_score(query, k, filter, where_document=where_document)
        return [document for document, _ in hits]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        *,
        where_document: Filter | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """As `similarity_search`, with each document's score: the service's cosine similarity
        between the query's vector and the document's, higher is better (1 = the same direction;
        -1 to 1). Not a distance."""
        _no_other_arguments("similarity_search_with_score", kwargs)
        if self._embedding is not None:
            vector = [float(number) for number in self._embedding.embed_query(query)]
            hits = self.client.search(vector=vector, top_k=k, where=filter, where_document=where_document)
        else:
            hits = self.client.search(query, top_k=k, where=filter, where_document=where_document)
        return [(_document(hit), hit.score) for hit in hits]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Filter | None = None,
        *,
        where_document: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The `k` documents closest to `embedding` (the service's DIMENSION numbers), best first."""
        _no_other_arguments("similarity_search_by_vector", kwargs)
        vector = [float(number) for number in embedding]
        hits = self.client.search(vector=vector, top_k=k, where=filter, where_document=where_document)
        return [_document(hit) for hit in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return similarity_as_relevance


def _with_vectors(embedding: Embeddings, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    vectors = embedding.embed_documents([document["text"] for document in documents])
    # float(): some Embeddings return numpy numbers, and JSON cannot encode a numpy float32.
    return [
        document | {"embedding": [float(number) for number in vector]}
        for document, vector in zip(documents, vectors, strict=True)
    ]


def _document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata=hit.metadata or {})


def _batches(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _no_other_arguments(method: str, kwargs: Mapping[str, Any]) -> None:
    """An option this store does not have is an error: silently ignoring, say, a misspelt filter
    would search everything."""
    if kwargs:
        raise TypeError(f"{method}() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
