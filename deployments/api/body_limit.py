"""The plan's request body limit: 413 before the body is parsed, whatever its transfer encoding."""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.api.errors import error_response
from deployments.core.errors import PayloadTooLarge


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, plan_name: str) -> None:
        self.app = app
        self._max_bytes = max_bytes
        self._plan_name = plan_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            # The server delivers no more than Content-Length bytes, so the header alone decides.
            if declared.isdigit() and int(declared) > self._max_bytes:
                await error_response(self._too_large(int(declared)), scope)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # Chunked: read up to the limit here, then hand the app the body as one message.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self._max_bytes:
                await error_response(self._too_large(len(body)), scope)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is at least {size} bytes; plan {self._plan_name!r} allows {self._max_bytes}: "
            "split the request",
            field="body",
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the buffered body once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
