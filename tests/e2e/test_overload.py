"""Overload: past the Ingress's running and queued requests, a request is refused at once with a
503 and Retry-After (Serve's max_queued_requests and backpressure_config, as serve_config.yaml sets
them) instead of joining an ever-longer queue. A small instance with tiny limits shows it."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.instance import ServeInstance

pytestmark = pytest.mark.e2e

KEY = "overload-api-key-0123456789abcdef"
LONG_TEXT = " ".join(["an ingest request long enough to keep the model busy for a while"] * 30)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    workdir = tmp_path_factory.mktemp("overload")
    instance = ServeInstance(
        workdir,
        {"TENANT_ID": "overload", "PERSIST_DIR": str(workdir / "data"), "API_KEY": KEY},
        # One request at a time and one waiting: the shipped config's mechanism at a scale a test can fill.
        deployments={"Ingress": {"max_ongoing_requests": 1, "max_queued_requests": 1}},
    )
    instance.start()
    yield instance
    instance.stop()


def test_requests_past_the_queue_get_a_fast_503_with_retry_after(small):
    body = {"documents": [{"id": f"d{n}", "text": f"{n} {LONG_TEXT}"} for n in range(48)]}
    clients = [httpx.Client(base_url=small.url, headers={"X-API-Key": KEY}, timeout=120) for _ in range(8)]
    # Every client made (an SSL context each: 20-50 ms of this process's CPU) before any is timed, and
    # all sent at once: the timings are the service's, not this process's threads starting one by one.
    start = threading.Barrier(len(clients))

    def embed(client: httpx.Client) -> tuple[int, float, httpx.Headers]:
        start.wait()
        started = time.monotonic()
        response = client.post("/embed/", json=body)
        return response.status_code, time.monotonic() - started, response.headers

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(embed, clients))
    for client in clients:
        client.close()
    statuses = sorted(status for status, _, _ in results)
    timings = [(status, round(seconds, 3)) for status, seconds, _ in results]
    assert set(statuses) <= {200, 503}, timings
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, timings
    refused = [(seconds, headers) for status, seconds, headers in results if status == 503]
    slowest_success = max(seconds for status, seconds, _ in results if status == 200)
    for seconds, headers in refused:
        assert headers["retry-after"] == "1"
        assert seconds < slowest_success / 2, timings  # refused at once, not after waiting its turn
    # Nothing was half done: the refused requests carried the same ids, so the count is one request's.
    health = httpx.get(f"{small.url}/healthz/", timeout=10).json()
    assert health["count"] == 48 and health["status"] == "ok"
