"""A small typed client for a chromedb-instance, over httpx.

It waits out what the service says is temporary: a 429 or 503 is retried after the `Retry-After`
seconds it carries (or a short backoff), up to `retries` times, as is a connection that could not be
made. Anything else the service refuses raises `ApiError` with the service's own words.

    from chromedb_client import Client
    with Client("http://localhost:8000", api_key="...") as db:
        db.embed([{"id": "doc-1", "text": "The cat sat on the mat."}])
        for hit in db.search("pets resting on rugs", top_k=3):
            print(hit.id, hit.score)
"""

import contextlib
import datetime
import email.utils
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Mode = Literal["semantic", "keyword", "hybrid"]
Include = Literal["text", "metadata", "embedding"]
Filter = Mapping[str, Any]
RETRYABLE = (429, 503)


class ApiError(Exception):
    """The service refused a request: its status, error name, message and the field at fault."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {error}: {message}" + (f" (field {field})" if field else ""))
        self.status, self.error, self.message, self.field = status, error, message, field


@dataclass
class Document:
    id: str
    text: str | None = None
    metadata: dict[str, Any] | None = None
    embedding: list[float] | None = None


@dataclass
class Hit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float
    span: list[int] | None = None


@dataclass
class EmbedResult:
    ids: list[str]
    count: int
    truncated: list[str] = field(default_factory=list)
    chunks: dict[str, int] = field(default_factory=dict)


@dataclass
class Page:
    documents: list[Document]
    next_offset: int | None


class Client:
    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)
        self.retries = retries
        self.retried = 0  # requests repeated after a 429, a 503 or a refused connection

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- the routes ---------------------------------------------------------------------------

    def embed(self, documents: Sequence[Mapping[str, Any]], chunking: bool = False) -> EmbedResult:
        """Add or replace documents ({"id", "text", "metadata", "embedding"}; only text is required).
        Send your own ids if you may retry: a retried write without ids could store twice."""
        body = self._post("/embed/", {"documents": list(documents), "chunking": chunking})
        return EmbedResult(**body)

    def search(
        self,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        top_k: int = 10,
        where: Filter | None = None,
        where_document: Filter | None = None,
        mode: Mode = "semantic",
        hybrid_weight: float | None = None,
    ) -> list[Hit]:
        body = _search_body(query, vector, top_k, where, where_document, mode, hybrid_weight)
        return [Hit(**hit) for hit in self._post("/search/", body)["results"]]

    def search_batch(self, searches: Sequence[Mapping[str, Any]]) -> list[list[Hit]]:
        answers = self._post("/search/batch/", {"searches": list(searches)})["results"]
        return [[Hit(**hit) for hit in answer["results"]] for answer in answers]

    def get(self, ids: Sequence[str], include: Sequence[Include] = ("text", "metadata")) -> list[Document]:
        body = self._post("/get/", {"ids": list(ids), "include": list(include)})
        return [Document(**document) for document in body["documents"]]

    def list(
        self,
        limit: int = 100,
        offset: int = 0,
        where: Filter | None = None,
        where_document: Filter | None = None,
        include: Sequence[Include] = ("text", "metadata"),
    ) -> Page:
        body = self._post(
            "/list/",
            {
                "limit": limit,
                "offset": offset,
                "where": where,
                "where_document": where_document,
                "include": list(include),
            },
        )
        return Page([Document(**document) for document in body["documents"]], body["next_offset"])

    def iter_documents(
        self, page_size: int = 100, where: Filter | None = None, include: Sequence[Include] = ("text", "metadata")
    ) -> Iterator[Document]:
        """Every document (matching `where`), a page at a time."""
        offset: int | None = 0
        while offset is not None:
            page = self.list(page_size, offset, where, None, include)
            yield from page.documents
            offset = page.next_offset

    def update(self, documents: Sequence[Mapping[str, Any]]) -> int:
        """Replace the metadata of existing documents ({"id", "metadata"}) without re-embedding."""
        return int(self._post("/update/", {"documents": list(documents)})["updated"])

    def delete(
        self, ids: Sequence[str] | None = None, *, where: Filter | None = None, where_document: Filter | None = None
    ) -> int:
        """Delete by ids, or everything matching a filter; returns how many were deleted."""
        body: dict[str, Any] = {"ids": list(ids)} if ids is not None else {}
        body |= {key: value for key, value in (("where", where), ("where_document", where_document)) if value}
        return int(self._post("/delete/", body)["deleted"])

    def count(self) -> tuple[int, int]:
        """(documents stored, the quota)."""
        body = self._request("GET", "/count/")
        return int(body["count"]), int(body["quota"])

    def health(self) -> dict[str, Any]:
        """GET /healthz/: the instance's configuration, limits and state."""
        return self._request("GET", "/healthz/", accept=(200, 503))

    # --- transport ----------------------------------------------------------------------------

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("POST", path, body)

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, accept: tuple[int, ...] = (200,)
    ) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, json=body)
            except httpx.ConnectError:
                if attempt == self.retries:
                    raise
                self._wait(attempt, None)
                continue
            if response.status_code in accept:
                result: dict[str, Any] = response.json()
                return result
            if response.status_code not in RETRYABLE or attempt == self.retries:
                raise _api_error(response)
            self._wait(attempt, response.headers.get("Retry-After"))
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        self.retried += 1
        time.sleep(retry_after_seconds(retry_after, default=min(0.25 * 2**attempt, 10.0)))


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Seconds a Retry-After header asks to wait (as seconds or as an HTTP date); `default` when
    absent or unreadable."""
    value = (value or "").strip()
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max((when - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)
    return default


def _search_body(
    query: str | None,
    vector: Sequence[float] | None,
    top_k: int,
    where: Filter | None,
    where_document: Filter | None,
    mode: Mode,
    hybrid_weight: float | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"top_k": top_k, "mode": mode}
    optional = {
        "query": query,
        "vector": list(vector) if vector is not None else None,
        "where": where,
        "where_document": where_document,
        "hybrid_weight": hybrid_weight,
    }
    return body | {key: value for key, value in optional.items() if value is not None}


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        return ApiError(response.status_code, body["error"], body["message"], body.get("field"))
    except (ValueError, KeyError, TypeError):  # not our JSON error (say, Serve's plain-text backpressure)
        return ApiError(response.status_code, "http_error", response.text[:500])
