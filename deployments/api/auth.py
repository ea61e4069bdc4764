"""API-key access control: with API_KEY set, every route but the health check, the API docs and
the console's static files needs the key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.

A plain ASGI middleware rather than a FastAPI dependency, so the key is checked before anything
else about the request (its body is not even read): an unauthenticated caller learns nothing.
"""

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api.console import is_console
from deployments.api.errors import error_response
from deployments.core.errors import Unauthorized

# Open to anyone: the platform's health probe, the API's own description and the console's page
# (which asks for the key itself), and `/`, which only redirects to the console.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/healthz/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def is_public(scope: Scope) -> bool:
    path = scope["path"]
    return scope["method"] in ("GET", "HEAD") and (path in PUBLIC_PATHS or is_console(path))


def presented_key(headers: Headers) -> str | None:
    if key := headers.get("x-api-key"):
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        # Constant-time comparison: response timing must not reveal how much of a guess was right.
        if key is not None and hmac.compare_digest(key.encode(), self._key):
            await self.app(scope, receive, send)
            return
        problem = Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            if key is None
            else "the API key is not valid for this instance",
            field="Authorization",
        )
        await error_response(problem)(scope, receive, send)
