"""One error model: every domain error carries its HTTP status and a stable machine-readable name.

Deployments raise these; the Ingress turns any of them into `{"error", "message", "field"}`.
They survive the hop between Ray actors because `__reduce__` keeps every attribute.
"""

from typing import Any


class ConfigError(Exception):
    """A setting is invalid: the service must not start. The message names the variable."""


class ServiceError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.field))

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidRequest(ServiceError):
    """The body is well-formed JSON but a field breaks the API's rules."""

    status_code = 422
    error = "validation_error"


class MalformedBody(ServiceError):
    status_code = 400
    error = "invalid_json"


class PlanLimitExceeded(ServiceError):
    """The request asks for more than the tenant's plan allows in one request."""

    status_code = 422
    error = "plan_limit_exceeded"


class InvalidFilter(ServiceError):
    status_code = 422
    error = "invalid_filter"


class QuotaExceeded(ServiceError):
    """The write would take the collection past MAX_DOCS; nothing of it was stored."""

    status_code = 403
    error = "quota_exceeded"


class NotFound(ServiceError):
    status_code = 404
    error = "not_found"


class ServiceUnavailable(ServiceError):
    status_code = 503
    error = "unavailable"


class Unauthorized(ServiceError):
    """No API key, or the wrong one, on a route that needs it."""

    status_code = 401
    error = "unauthorized"
