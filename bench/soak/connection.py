"""The soak's HTTP: a connection that carries the tenant's key, and how long a 429 asks it to wait."""

import httpx

from bench.soak.config import MAX_RETRY_AFTER_S, REQUEST_TIMEOUT_S, SoakConfig
from chromedb_client.client import retry_after_seconds


def http_client(config: SoakConfig) -> httpx.Client:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    return httpx.Client(base_url=config.url, headers=headers, timeout=REQUEST_TIMEOUT_S)


def asked_wait_s(response: httpx.Response) -> float:
    """The pause a 429's Retry-After asks for, capped: one odd answer must not stall the soak."""
    return min(retry_after_seconds(response.headers.get("retry-after")), MAX_RETRY_AFTER_S)
