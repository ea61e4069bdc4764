"""Calling another deployment: our own errors come back as themselves, Ray's as a 503, and no call
waits without bound for a replica that is not there.

Reads, which take milliseconds, may be abandoned at any point (they change nothing). A write, or
an embedding of documents (seconds), may only be abandoned before it reaches a replica: once it is
there it is awaited to its end, so a 503 means "nothing was stored" unless it says otherwise: a
store replica that dies while it holds a write may have committed it, and its 503 says the
outcome is unknown. A stuck write is the store's health check's business (ChromaStore.check_health).
"""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

from deployments.core.errors import ServiceError, ServiceUnavailable

# Reads (query embedding, lookups, searches) normally take milliseconds. Past this, the deployment
# is restarting or swamped: answer 503 and let the client retry rather than hold it.
READ_TIMEOUT_S = 10.0
# How long a long call may wait for a replica to take it (the store's replica is being replaced,
# say): past this it is refused with a 503 without ever being sent.
HANDOVER_TIMEOUT_S = 10.0
HEALTH_PROBE_TIMEOUT_S = 2.0

# A replica that died, a full queue, a deployment being replaced, a chosen replica gone before dispatch.
_RAY_UNAVAILABLE = (RayActorError, BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError)


def _unavailable(deployment: str, exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(f"the {deployment} deployment is unavailable ({type(exc).__name__}); retry shortly")


class NotAnsweredInTime(ServiceUnavailable):
    """The deployment is there but did not answer in time: busy, or stuck (which Serve's own health
    checks of its replicas find and act on)."""


def _timed_out(deployment: str, timeout_s: float, doing: str) -> ServiceUnavailable:
    return NotAnsweredInTime(
        f"the {deployment} deployment did not {doing} within {timeout_s:g} s (restarting or overloaded); retry shortly"
    )


def _lost_with_write(deployment: str, exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"the {deployment} replica was lost while it ran this write ({type(exc).__name__}): it may or may "
        "not have been stored. Read the ids back, or send it again (a write by id is safe to repeat)"
    )


async def call(
    deployment: str, response: Any, unavailable: Callable[[str, BaseException], ServiceUnavailable] = _unavailable
) -> Any:
    """Await a handle call, re-raising our own errors as themselves and Ray's as a 503 made by
    `unavailable(deployment, exc)`."""
    try:
        return await response
    except RayTaskError as exc:
        if isinstance(exc.cause, ServiceError):
            raise exc.cause from None
        raise
    except _RAY_UNAVAILABLE as exc:
        raise unavailable(deployment, exc) from None


async def read(deployment: str, response: Any, timeout_s: float | None = None) -> Any:
    """`call` for a call that changes nothing, so giving up on it is safe: 503 past `timeout_s`
    (READ_TIMEOUT_S by default; waiting is cancelled, and with it the call if it has not started)."""
    timeout_s = READ_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await call(deployment, response)
    except TimeoutError:
        raise _timed_out(deployment, timeout_s, "answer") from None


async def send(deployment: str, method: Any, *args: Any, writes: bool = True) -> Any:
    """Call `method` (a handle's method, e.g. `store.upsert`) with `args`, for a call that changes
    data (`writes`) or may take long: it is handed to a replica within HANDOVER_TIMEOUT_S or refused
    with a 503, never sent; once handed over it is awaited to its end (Serve's choose_replica/dispatch)."""
    if not hasattr(method, "choose_replica"):  # an in-process stand-in (contract tests): no replica to wait for
        return await call(deployment, method.remote(*args))
    async with contextlib.AsyncExitStack() as held:
        try:
            async with asyncio.timeout(HANDOVER_TIMEOUT_S):
                chosen = await held.enter_async_context(method.choose_replica(*args))
        except TimeoutError:
            raise _timed_out(deployment, HANDOVER_TIMEOUT_S, "take the write") from None
        except _RAY_UNAVAILABLE as exc:
            raise _unavailable(deployment, exc) from None
        return await call(deployment, method.dispatch(chosen, *args), _lost_with_write if writes else _unavailable)
