"""The REST API: thin routes over the TenantService (api.service); every error answers through api.errors."""

import os
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api.auth import ApiKeyMiddleware, is_public
from deployments.api.body_limit import BodySizeLimitMiddleware
from deployments.api.console import CONSOLE_PATH, ConsoleFiles
from deployments.api.dependencies import ServiceDep
from deployments.api.errors import error_response, json_error
from deployments.api.openai_embeddings import router as openai_router
from deployments.api.rate_limits import RateLimitMiddleware
from deployments.api.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    CountResponse,
    DeleteRequest,
    DeleteResponse,
    DocumentId,
    DocumentOut,
    EmbedRequest,
    EmbedResponse,
    ErrorResponse,
    GetRequest,
    GetResponse,
    HealthResponse,
    ListRequest,
    ListResponse,
    SearchRequest,
    SearchResponse,
    SnapshotResponse,
    UpdateRequest,
    UpdateResponse,
)
from deployments.api.service import TenantService
from deployments.core.config import METRICS_PORT_ENV
from deployments.core.errors import (
    InternalFailure,
    InvalidRequest,
    MalformedBody,
    NotFound,
    ServiceError,
    ServiceUnavailable,
)
from deployments.runtime import metrics

METRICS_TIMEOUT_S = 5.0

DESCRIPTION = """\
Search over one tenant's documents. Add documents with `POST /embed/`, find them by meaning, by
words or both with `POST /search/` (several at once with `POST /search/batch/`), fetch them by id
with `POST /get/` or `GET /documents/{id}`, page through them with `POST /list/`, count them with
`GET /count/`, change their metadata with `POST /update/`, remove them by id or filter with
`POST /delete/`; `GET /healthz/` reports the instance; a browser console is at `/console/`.
Errors are JSON: `{"error": "<name>", "message": "<what is wrong>", "field": "<path>"}`.
When the instance has an API key, send it as `Authorization: Bearer <key>` (or `X-API-Key: <key>`)
on every route but `GET /healthz/` and the console's own page; on this page, **Authorize** takes it
and sends it with every "Try it out".
"""

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "The body is not valid JSON.",
        401: "unauthorized: the instance has an API key and the request lacks it or has another.",
        404: "not_found: no such document (GET /documents/{doc_id}) or no such route.",
        403: "quota_exceeded: the write would exceed MAX_DOCS; nothing was stored. read_only_key: the "
        "request's key is API_KEY_READONLY, which opens searches and reads only.",
        413: "payload_too_large: the body is over the plan's max_body_bytes.",
        422: "A field is invalid or over the plan's limits; `field` names it.",
        429: "rate_limited: over the plan's requests or documents per second; wait `Retry-After` seconds.",
        503: "A deployment is restarting, overloaded or slow; retry after `Retry-After` seconds.",
        507: "insufficient_storage: the data folder takes no writes (disk full); nothing was stored.",
    }.items()
}


router = APIRouter()


def route(method: str, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve `path/` (documented) and `path` alike: a 307 redirect would make clients drop a POST body."""

    responses = {**ERRORS, **kwargs.pop("responses", {})}

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(f"{path}/", endpoint, methods=[method], responses=responses, **kwargs)
        router.add_api_route(path, endpoint, methods=[method], include_in_schema=False, **kwargs)
        return endpoint

    return register


@route("POST", "/embed", response_model=EmbedResponse, summary="Add or replace documents")
async def embed(body: EmbedRequest, service: ServiceDep) -> EmbedResponse:
    """Embed and store documents. A missing `id` is generated; an existing id is replaced whole
    (text, vector and metadata) and is not counted twice against the quota; an unchanged text keeps
    its stored vector without running the model again. The whole request is
    stored or, on any error, nothing of it. `truncated` lists ids whose text was longer than the
    model's window: the text is stored whole, its vector is made from its start.

    ```
    curl -X POST localhost:8000/embed/ -H 'Content-Type: application/json' \\
      -d '{"documents": [{"id": "doc-1", "text": "The cat sat on the mat.", "metadata": {"page": 3}}]}'
    ```
    """
    return await service.embed(body)


@route("POST", "/search", response_model=SearchResponse, summary="Search by meaning, by words, or both")
async def search(body: SearchRequest, service: ServiceDep) -> SearchResponse:
    """Return the `top_k` best documents for `query`, best first. `mode`: `semantic` (by meaning;
    `score` is cosine similarity), `keyword` (by the query's words; BM25) or `hybrid` (both, fused;
    0 to 1, `hybrid_weight` the semantic share). Or search by your own `vector` (semantic).
    `where` filters on metadata with chromadb's operators, e.g. `{"$and": [{"page": {"$gte": 2}},
    {"source": {"$in": ["notes", "mail"]}}]}`; `where_document` on the text, e.g.
    `{"$contains": "invoice"}`.

    ```
    curl -X POST localhost:8000/search/ -H 'Content-Type: application/json' \\
      -d '{"query": "pets resting on rugs", "top_k": 3, "mode": "hybrid"}'
    ```
    """
    return await service.search(body)


@route("POST", "/search/batch", response_model=BatchSearchResponse, summary="Several searches in one request")
async def search_batch(body: BatchSearchRequest, service: ServiceDep) -> BatchSearchResponse:
    """Up to 32 searches, each as `POST /search/` takes it, answered in order. Each counts against
    the plan's requests per second. The first that fails fails the request; `field` says which
    (`searches.2.where`).

    ```
    curl -X POST localhost:8000/search/batch/ -H 'Content-Type: application/json' \\
      -d '{"searches": [{"query": "pets"}, {"query": "tax", "mode": "keyword"}]}'
    ```
    """
    return await service.search_many(body)


@route("POST", "/delete", response_model=DeleteResponse, summary="Delete documents by id or by filter")
async def delete(body: DeleteRequest, service: ServiceDep) -> DeleteResponse:
    """Delete the given `ids` (unknown ids are not an error), or every document matching `where`
    and/or `where_document`: all of them or, if more than the plan's documents per request match,
    none (422). `deleted` counts what was deleted.

    ```
    curl -X POST localhost:8000/delete/ -H 'Content-Type: application/json' -d '{"ids": ["doc-1"]}'
    curl -X POST localhost:8000/delete/ -H 'Content-Type: application/json' -d '{"where": {"source": "old"}}'
    ```
    """
    return await service.delete(body)


@route("POST", "/update", response_model=UpdateResponse, summary="Replace documents' metadata")
async def update(body: UpdateRequest, service: ServiceDep) -> UpdateResponse:
    """Replace the metadata of existing documents without re-embedding them (text and vector stay).
    All of them or none: an unknown id is a 404 naming it.

    ```
    curl -X POST localhost:8000/update/ -H 'Content-Type: application/json' \\
      -d '{"documents": [{"id": "doc-1", "metadata": {"source": "notes", "page": 4}}]}'
    ```
    """
    return await service.update(body)


@route("POST", "/list", response_model=ListResponse, summary="List documents, a page at a time")
async def list_documents(body: ListRequest, service: ServiceDep) -> ListResponse:
    """A page of `limit` documents matching the optional filters, in the order they were first
    added, from `offset`; pass `next_offset` back for the next page (null on the last). Writes
    between pages shift later pages: a document may then be skipped or seen twice.

    ```
    curl -X POST localhost:8000/list/ -H 'Content-Type: application/json' -d '{"limit": 100, "offset": 0}'
    ```
    """
    return await service.list(body)


@route("POST", "/get", response_model=GetResponse, summary="Get documents by id")
async def get_documents(body: GetRequest, service: ServiceDep) -> GetResponse:
    """The stored documents among `ids`, in the order asked; ids not stored are listed in `missing`.
    `include` picks what comes back of each: `text`, `metadata`, `embedding` (the stored vector).

    ```
    curl -X POST localhost:8000/get/ -H 'Content-Type: application/json' \\
      -d '{"ids": ["doc-1", "doc-9"], "include": ["text", "metadata"]}'
    ```
    """
    return await service.get(body)


@router.get(
    "/documents/{doc_id}",
    response_model=DocumentOut,
    responses=ERRORS,
    summary="Get one document",
)
async def get_document(doc_id: Annotated[DocumentId, Path()], service: ServiceDep) -> DocumentOut:
    """One document with its text and metadata; 404 when the id is not stored. Ids with `/` in
    them are fetched with `POST /get/`.

    ```
    curl localhost:8000/documents/doc-1
    ```
    """
    found = await service.get(GetRequest(ids=[doc_id]))
    if not found.documents:
        raise NotFound(f"no document with id {doc_id!r}", field="doc_id")
    return found.documents[0]


@route("GET", "/count", response_model=CountResponse, summary="How many documents are stored")
async def count(service: ServiceDep) -> CountResponse:
    """The document count and the quota (`MAX_DOCS`).

    ```
    curl localhost:8000/count/
    ```
    """
    return await service.count()


@route("POST", "/snapshot", response_model=SnapshotResponse, summary="Snapshot the data folder")
async def snapshot(service: ServiceDep) -> SnapshotResponse:
    """Copy the tenant's data, consistently, into a new folder under `PERSIST_DIR/snapshots/` on
    the instance's volume, while the service runs (writes wait for it; searches go on). Restore
    it into a fresh instance with `python -m deployments.storage.snapshot restore <folder>` (README).

    ```
    curl -X POST localhost:8000/snapshot/
    ```
    """
    return await service.snapshot()


@route(
    "GET",
    "/metrics",
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."}},
    summary="Prometheus metrics",
)
async def prometheus_metrics() -> PlainTextResponse:
    """Ray's, Ray Serve's and the service's own metrics (`ray_cdbi_*`: documents stored, quota used,
    embedding batch sizes, latency by route, rejected requests by reason) in Prometheus' text format,
    from Ray's metrics agent on loopback. 503 when it cannot be reached (README: Observability).

    ```
    curl localhost:8000/metrics/
    ```
    """
    port = os.environ.get(METRICS_PORT_ENV)
    if port is None:
        raise ServiceUnavailable("no metrics export on this instance: it was not started by deployments.launch")
    try:
        async with httpx.AsyncClient(timeout=METRICS_TIMEOUT_S) as client:
            exported = await client.get(f"http://127.0.0.1:{port}/metrics")
            exported.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Ray's metrics agent did not answer ({type(exc).__name__}); retry shortly") from None
    return PlainTextResponse(exported.text, media_type="text/plain; version=0.0.4")


@route("GET", "/healthz", response_model=HealthResponse, summary="Instance configuration and status")
async def healthz(service: ServiceDep) -> JSONResponse:
    """Tenant, plan, model, document count, quota and each deployment's state. 200 while every
    deployment is there (answering, or busy), 503 (same body) while one is not. Never contains a secret.

    ```
    curl localhost:8000/healthz/
    ```
    """
    health = await service.health()
    return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)


@router.get("/", include_in_schema=False)
@router.get(CONSOLE_PATH, include_in_schema=False)
async def to_console() -> RedirectResponse:
    """A browser pointed at the instance's URL, or at /console without its slash, lands on the console."""
    return RedirectResponse(f"{CONSOLE_PATH}/")


# The handlers are coroutines: Starlette runs a plain function handler in a worker thread.
# Each passes the request's scope on: under /v1/ the same error takes OpenAI's envelope (api.errors).
async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc, request.scope)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        if error["type"] == "json_invalid":
            return error_response(MalformedBody(f"the body is not valid JSON: {error['msg']}"), request.scope)
        field = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
        problem = error["msg"].removeprefix("Value error, ")
        if field == "body":  # missing, not an object, or sent without a JSON content type
            problem = f"the body must be a JSON object sent with Content-Type: application/json ({problem})"
        problems.append((field, problem))
    message = "; ".join(f"{field}: {problem}" for field, problem in problems)
    return error_response(InvalidRequest(message, field=problems[0][0]), request.scope)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors in the one error format: a body that is not UTF-8 (FastAPI's 400
    "There was an error parsing the body"), an unknown path (404), a wrong method (405)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body": its cause says which error
        if isinstance(exc.__cause__, RecursionError):
            return error_response(MalformedBody("the body's JSON nests too deeply to be read"), request.scope)
        return error_response(MalformedBody("the body is not valid JSON: it is not UTF-8 text"), request.scope)
    error = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return json_error(exc.status_code, {"error": error, "message": str(exc.detail)}, exc.headers, request.scope)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours still answers in the error model (Starlette then re-raises it, so Serve logs
    the traceback)."""
    failure = InternalFailure(f"the request failed on the server ({type(exc).__name__}); it was logged")
    return error_response(failure, request.scope)


class TimingMiddleware:
    """Latency by route (the matched route's path, so unknown paths make no new series)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            metrics.request_seconds.observe(time.perf_counter() - started, tags={"route": route})


# The API key as OpenAPI security schemes, so that /docs has an Authorize button and sends the key.
# Documentation only, never a route's dependency: ApiKeyMiddleware checks the key before anything
# else about the request is read, which a dependency could not.
API_KEY_SCHEMES = (
    HTTPBearer(
        scheme_name="ApiKeyBearer",
        description="The instance's API key as `Authorization: Bearer <key>`: API_KEY or API_KEY_NEXT for "
        "every route, API_KEY_READONLY for searches and reads only. Needed when the instance has a key "
        "(GET /healthz/ says so in `auth`).",
        auto_error=False,
    ),
    APIKeyHeader(
        name="X-API-Key",
        scheme_name="ApiKeyHeader",
        description="The same key as `X-API-Key: <key>`, instead of the Authorization header.",
        auto_error=False,
    ),
)


def document_api_key(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the key's schemes and list them on every operation the middleware guards, as decided
    by the middleware's own `is_public`: the document cannot call a route open that the key closes."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in API_KEY_SCHEMES:
        schemes[scheme.scheme_name] = scheme.model.model_dump(by_alias=True, exclude_none=True, mode="json")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not is_public({"type": "http", "method": method.upper(), "path": path}):
                # Either scheme, or none ({}): the one document every instance serves (tests/fuzzing.py)
                # describes an instance without a key too, which takes every request without one.
                operation["security"] = [{scheme.scheme_name: []} for scheme in API_KEY_SCHEMES] + [{}]
    return document


class Api(FastAPI):
    """FastAPI with the API key in its OpenAPI document (built once, when first asked for)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_api_key(super().openapi())
        return self.openapi_schema


def create_api(service: TenantService) -> FastAPI:
    api = Api(
        title="chromedb-instance",
        description=DESCRIPTION,
        version="1.0.0",
        redirect_slashes=False,
    )
    api.add_exception_handler(ServiceError, _service_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(Exception, _unexpected_error)
    api.state.service = service
    api.include_router(router)
    api.include_router(openai_router)  # POST /v1/embeddings (api.openai_embeddings)
    api.mount(CONSOLE_PATH, ConsoleFiles(), name="console")
    # The last added runs first: the key, then the request rate, then the body size, then the route.
    plan = service.settings.limits
    api.add_middleware(BodySizeLimitMiddleware, max_bytes=plan.max_body_bytes, plan_name=plan.name)
    api.add_middleware(RateLimitMiddleware, limiter=service.rate_limiter)
    if keys := service.settings.api_keys:
        read = [key for name, key in keys.items() if name == "API_KEY_READONLY"]
        full = [key for name, key in keys.items() if name != "API_KEY_READONLY"]
        api.add_middleware(ApiKeyMiddleware, full_keys=full, read_keys=read)
    api.add_middleware(TimingMiddleware)  # outermost: refusals are timed too
    return api
