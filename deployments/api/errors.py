"""The one place an error becomes an HTTP answer. The API's exception handlers and its middleware
(API key, rate limits, body size) all answer through here, so every error body is the error model
`{"error", "message", "field"}` and every one is counted (cdbi_rejected_requests_total)."""

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from deployments.core.errors import ServiceError
from deployments.runtime import metrics


def error_response(exc: ServiceError) -> JSONResponse:
    return json_error(exc.status_code, exc.to_body(), exc.headers)


def json_error(status_code: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error answer from its parts (Starlette's own errors have no ServiceError)."""
    metrics.rejected.inc(tags={"reason": body["error"]})
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}) or None)
