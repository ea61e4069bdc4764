"""How many writes one Ingress replica lets through at once, so reads never queue behind them.

The store applies writes one at a time, and every call waiting for it holds one of the store
replica's request slots (`max_ongoing_requests` in serve_config.yaml); an import burst of more
writes than slots would leave searches and health probes queued behind the writes, in Serve's
queue, for seconds. So: at most WRITES_IN_FLIGHT writes (whole /embed/, /update/, /delete/ and
/snapshot/ requests, model runs included) go on at once; up to WRITES_WAITING more wait here, in
order; any further write gets a 503 with Retry-After at once. Reads pass freely: they keep the
rest of the Ingress's and the store's slots.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from deployments.core.errors import ServiceUnavailable

# In flight: enough to keep the model's batches full (a 256-document /embed/ is several batches)
# and the writer busy; well under the store's 64 slots, so reads always find some.
WRITES_IN_FLIGHT = 16
# Waiting: an import with this many parallel clients queues instead of being refused; together
# with those in flight, half the Ingress's 128 slots, the other half being the reads'.
WRITES_WAITING = 48


class WriteGate:
    def __init__(self, in_flight: int | None = None, waiting: int | None = None) -> None:
        self._slots = asyncio.Semaphore(WRITES_IN_FLIGHT if in_flight is None else in_flight)
        self._most_waiting = WRITES_WAITING if waiting is None else waiting
        self._waiting = 0

    @asynccontextmanager
    async def admit(self, charge: Callable[[], None] = lambda: None) -> AsyncIterator[None]:
        """Run the write inside this: it waits its turn, or is refused (503) when the queue is full.
        `charge` (the plan's rate limits) runs once the write is let in or queued, before it waits:
        a write refused here costs the tenant none of its documents per second, and one the rate
        limits refuse never takes a place in the queue."""
        if self._slots.locked() and self._waiting >= self._most_waiting:
            raise ServiceUnavailable(
                f"{self._most_waiting} writes are already waiting for this instance; nothing of this one "
                "was done: retry after a second (searches are not affected)"
            )
        charge()
        self._waiting += 1  # acquire() returns at once, without yielding, while a slot is free
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()
