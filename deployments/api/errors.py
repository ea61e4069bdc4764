"""The one place an error becomes an HTTP answer. The API's exception handlers and its middleware
(API key, rate limits, body size) all answer through here, so every error body is the error model
`{"error", "message", "field"}` and every one is counted (cdbi_rejected_requests_total).

Under `/v1/`, the routes that speak OpenAI's API (deployments.api.openai_embeddings), the same
error takes OpenAI's envelope instead, `{"error": {"message", "type", "param", "code"}}`, which
OpenAI's clients read: same status, our name as `code`, our field as `param`. The envelope is
chosen here, from the request's path, so that a refusal by the middleware (401, 429, 413) is shaped
like one by the route.
"""

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Scope

from deployments.core.errors import ServiceError
from deployments.runtime import metrics

OPENAI_PREFIX = "/v1"


def error_response(exc: ServiceError, scope: Scope | None = None) -> JSONResponse:
    """`scope`: the request's, which decides the envelope (without one, the error model's own)."""
    return json_error(exc.status_code, exc.to_body(), exc.headers, scope)


def json_error(
    status_code: int, body: dict[str, Any], headers: Mapping[str, str] | None = None, scope: Scope | None = None
) -> JSONResponse:
    """An error answer from its parts (Starlette's own errors have no ServiceError)."""
    metrics.rejected.inc(tags={"reason": body["error"]})
    if scope is not None and speaks_openai(scope):
        body = openai_error_body(status_code, body)
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}) or None)


def speaks_openai(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return path == OPENAI_PREFIX or path.startswith(f"{OPENAI_PREFIX}/")


def openai_error_body(status_code: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """The error model's body in OpenAI's envelope. `type` is OpenAI's kind of error, from the
    status; `code` keeps our stable name, so one error reads the same on every route."""
    return {
        "error": {
            "message": body["message"],
            "type": _openai_type(status_code),
            "param": body.get("field"),
            "code": body["error"],
        }
    }


def _openai_type(status_code: int) -> str:
    if status_code >= 500:
        return "server_error"
    return {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status_code, "invalid_request_error"
    )
