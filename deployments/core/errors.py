"""One error model: every domain error carries its HTTP status and a stable machine-readable name.

Deployments raise these; the Ingress turns any of them into `{"error", "message", "field"}`
(deployments.api.errors).
They survive the hop between Ray actors because `__reduce__` keeps every attribute.
"""

from collections.abc import Mapping
from typing import Any, ClassVar


class ConfigError(Exception):
    """A setting is invalid: the service must not start. The message names the variable."""


class ServiceError(Exception):
    status_code = 400
    error = "bad_request"
    headers: ClassVar[Mapping[str, str]] = {}  # extra response headers, e.g. Retry-After

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
    """A deployment is restarting, overloaded or did not answer in time; retrying is safe."""

    status_code = 503
    error = "unavailable"
    headers: ClassVar[Mapping[str, str]] = {"Retry-After": "1"}


class RateLimited(ServiceError):
    """More requests or documents per second than the plan allows; nothing was done."""

    status_code = 429
    error = "rate_limited"
    headers: ClassVar[Mapping[str, str]] = {"Retry-After": "1"}  # the plan's windows are one second long


class PayloadTooLarge(ServiceError):
    status_code = 413
    error = "payload_too_large"


class StorageUnavailable(ServiceError):
    """The data folder cannot take writes (disk full, read-only); nothing was stored, reads still work."""

    status_code = 507
    error = "insufficient_storage"

    @classmethod
    def refused(cls, cause: object) -> "StorageUnavailable":
        return cls(
            f"the data folder cannot take writes ({cause}); nothing was stored. Searches still work; "
            "free disk space or fix the folder's permissions, then retry"
        )


class ReadOnlyKey(ServiceError):
    """A read-only key on a route that writes."""

    status_code = 403
    error = "read_only_key"


class InternalFailure(ServiceError):
    """A fault of ours, not the request's: the answer says so and the log has the traceback."""

    status_code = 500
    error = "internal_error"


class Unauthorized(ServiceError):
    """No API key, or the wrong one, on a route that needs it."""

    status_code = 401
    error = "unauthorized"
    headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="chromedb-instance"'}
