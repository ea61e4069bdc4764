"""API-key access control: with API_KEY set, every route but the health check, the API docs and
the console's static files needs a key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
API_KEY and API_KEY_NEXT (a rotation's new key) open every route; API_KEY_READONLY the reads only.

A plain ASGI middleware rather than a FastAPI dependency, so the key is checked before anything
else about the request (its body is not even read): an unauthenticated caller learns nothing.
"""

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api.console import is_console
from deployments.api.errors import error_response
from deployments.core.errors import ReadOnlyKey, Unauthorized

# Open to anyone: the platform's health probe, the API's own description and the console's page
# (which asks for the key itself), and `/`, which only redirects to the console.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/healthz/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


# What a read-only key may call: searches and reads, nothing that writes, snapshots or shows metrics.
READ_ROUTES = frozenset(
    {("POST", path) for base in ("/search", "/search/batch", "/get", "/list") for path in (base, base + "/")}
    | {("GET", "/count"), ("GET", "/count/")}
)


def is_read(scope: Scope) -> bool:
    method, path = scope["method"], scope["path"]
    return (method, path) in READ_ROUTES or (method in ("GET", "HEAD") and path.startswith("/documents/"))


def is_public(scope: Scope) -> bool:
    path = scope["path"]
    return scope["method"] in ("GET", "HEAD") and (path in PUBLIC_PATHS or is_console(path))


def presented_key(headers: Headers) -> str | None:
    if key := headers.get("x-api-key"):
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, full_keys: list[str], read_keys: list[str]) -> None:
        self.app = app
        self._keys = [(key.encode(), True) for key in full_keys] + [(key.encode(), False) for key in read_keys]

    def _grants(self, key: str) -> bool | None:
        """True: every route; False: reads only; None: not a key of this instance. Every key is
        compared, in constant time: response timing must not reveal how much of a guess was right."""
        presented = key.encode()
        found = None
        for candidate, full in self._keys:
            if hmac.compare_digest(presented, candidate):
                found = full
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        grants = self._grants(key) if key is not None else None
        if grants or (grants is False and is_read(scope)):
            await self.app(scope, receive, send)
            return
        problem = (
            ReadOnlyKey(
                "this key is read-only (API_KEY_READONLY): it may search, get, list and count; "
                "writes, snapshots, metrics and /v1/embeddings need the instance's full key",
                field="Authorization",
            )
            if grants is False
            else Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
                if key is None
                else "the API key is not valid for this instance",
                field="Authorization",
            )
        )
        await error_response(problem, scope)(scope, receive, send)
