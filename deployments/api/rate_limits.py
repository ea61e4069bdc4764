"""Per-plan rate limits: requests and documents per second, refused with 429 and Retry-After.

Counted in the Ingress replica's memory over a moving one-second window (the `limits` library), so
each Ingress replica enforces the plan's rates on its own: with N Ingress replicas a tenant can
reach N times them. The shipped serve_config.yaml runs one Ingress replica (README: Plans).
"""

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api.auth import is_public
from deployments.api.errors import error_response
from deployments.core.errors import RateLimited
from deployments.core.plans import Plan


class RateLimiter:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._windows = MovingWindowRateLimiter(MemoryStorage())
        self._requests = RateLimitItemPerSecond(plan.requests_per_s)
        self._documents = RateLimitItemPerSecond(plan.documents_per_s)

    def admit_request(self, count: int = 1) -> None:
        """Charge `count` requests (a batch of searches counts each search)."""
        if not self._windows.hit(self._requests, "requests", cost=count):
            raise RateLimited(
                f"more than {self._plan.requests_per_s} requests in one second; plan {self._plan.name!r} "
                "allows no more: retry after the Retry-After header's seconds"
            )

    def admit_documents(self, count: int, field: str = "documents") -> None:
        """Charge `count` documents written or deleted (or texts embedded); refuse the whole request
        if they don't fit. `field`: the request's field that holds them."""
        if not self._windows.hit(self._documents, "documents", cost=count):
            raise RateLimited(
                f"{count} more documents would exceed {self._plan.documents_per_s} documents in one second; "
                f"plan {self._plan.name!r} allows no more: retry after the Retry-After header's seconds",
                field=field,
            )


class RateLimitMiddleware:
    """Counts every request to a non-public route before its body is read, so a flood of
    requests costs a refusal each, not a parse."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_public(scope):
            try:
                self._limiter.admit_request()
            except RateLimited as exc:
                await error_response(exc, scope)(scope, receive, send)
                return
        await self.app(scope, receive, send)
