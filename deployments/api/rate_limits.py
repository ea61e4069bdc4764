"""Per-plan rate limits: requests and documents per second, refused with 429 and Retry-After.

Counted in the Ingress replica's memory over a moving one-second window, so each Ingress replica
enforces the plan's rates on its own: with N Ingress replicas a tenant can reach N times them. The
shipped serve_config.yaml runs one Ingress replica (README: Plans).

The window is this module's own, not the `limits` library's: every in-memory storage of `limits`
5.8 expires its entries on a timer thread (or task) started every 10 ms while requests arrive,
which cost 150-180 us of CPU a request at 150 requests a second here, against 7 us for this
window (README: Performance).
"""

import threading
import time
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api.auth import is_public
from deployments.api.errors import error_response
from deployments.core.errors import RateLimited
from deployments.core.plans import Plan

WINDOW_S = 1.0


class MovingWindow:
    """At most `limit` units in any WINDOW_S seconds: a charge that would exceed it is refused
    whole and counts nothing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._charges: deque[tuple[float, int]] = deque()  # (when, units), oldest first
        self._spent = 0  # units charged within the window
        self._lock = threading.Lock()

    def charge(self, units: int) -> bool:
        with self._lock:
            now = time.monotonic()
            while self._charges and self._charges[0][0] <= now - WINDOW_S:
                self._spent -= self._charges.popleft()[1]
            if self._spent + units > self.limit:
                return False
            self._charges.append((now, units))
            self._spent += units
            return True


class RateLimiter:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._requests = MovingWindow(plan.requests_per_s)
        self._documents = MovingWindow(plan.documents_per_s)

    def admit_request(self, count: int = 1) -> None:
        """Charge `count` requests (a batch of searches counts each search)."""
        if not self._requests.charge(count):
            raise RateLimited(
                f"more than {self._plan.requests_per_s} requests in one second; plan {self._plan.name!r} "
                "allows no more: retry after the Retry-After header's seconds"
            )

    def admit_documents(self, count: int, field: str = "documents") -> None:
        """Charge `count` documents written or deleted (or texts embedded); refuse the whole request
        if they don't fit. `field`: the request's field that holds them."""
        if not self._documents.charge(count):
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
