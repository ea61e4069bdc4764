"""What /healthz/ tells the soak: when the instance is ready, and whether the pool fits its quota."""

import contextlib
import time
from typing import Any

import httpx

from bench.soak.config import HEALTHY_TIMEOUT_S, SoakConfig


def wait_healthy(http: httpx.Client, timeout_s: float = HEALTHY_TIMEOUT_S) -> dict[str, Any]:
    """/healthz/'s body once it says every deployment answers: an instance just (re)started may
    answer 503 "degraded", with no count, for a while. Not bench.instance.wait_until_up: that one
    watches a process this soak may not have started (--url), and the soak needs the body."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = http.get("/healthz/")
            last = f"{response.status_code} {response.text[:500]}"
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
        time.sleep(1)
    raise RuntimeError(f"{http.base_url} not healthy after {timeout_s:.0f} s: {last}")


def check_room(health: dict[str, Any], config: SoakConfig) -> int:
    """The documents already stored; refuses a pool that could push the tenant past its quota
    (a 403 mid-soak would be the soak's fault, not the service's)."""
    if config.per_client < 1:
        raise ValueError(f"--pool {config.pool} is smaller than --clients {config.clients}")
    count, quota = int(health["count"]), int(health["quota"])
    if count + config.per_client * config.clients > quota:
        raise ValueError(f"{count} stored + pool {config.pool} exceeds the quota {quota}: lower --pool")
    return count
