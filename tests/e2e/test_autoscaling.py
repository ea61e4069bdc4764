"""The Embedder scales with load, independently of the store: under a burst of ingest its replicas
go up to max_replicas, after it they come back down to min_replicas, while the single ChromaStore
replica stays as it is. serve_config.yaml's autoscaling_config with short delays for the test."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.instance import ServeInstance, session_processes

pytestmark = pytest.mark.e2e

KEY = "autoscaling-api-key-0123456789abcdef"
SCALE_TIMEOUT_S = 90
TEXT = " ".join(["a passage long enough that embedding it keeps a replica busy for a while"] * 20)


@pytest.fixture(scope="module")
def elastic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    workdir = tmp_path_factory.mktemp("autoscaling")
    autoscaling = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 1,
        "downscale_delay_s": 5,
        "look_back_period_s": 2,
        "metrics_interval_s": 0.5,
    }
    instance = ServeInstance(
        workdir,
        {"TENANT_ID": "autoscaling", "PLAN": "pro", "PERSIST_DIR": str(workdir / "data"), "API_KEY": KEY},
        deployments={"Embedder": {"autoscaling_config": autoscaling}},
    )
    instance.start()
    yield instance
    instance.stop()


def replicas(instance: ServeInstance, deployment: str) -> int:
    assert instance.process is not None
    return sum(
        f"ServeReplica:chromedb:{deployment}" in command for _, command in session_processes(instance.process.pid)
    )


def wait_for_replicas(instance: ServeInstance, deployment: str, count: int) -> float:
    started = time.monotonic()
    while replicas(instance, deployment) != count:
        assert time.monotonic() - started < SCALE_TIMEOUT_S, f"{deployment} never reached {count} replicas"
        time.sleep(0.5)
    return time.monotonic() - started


def test_embedder_replicas_follow_the_load_and_the_store_stays_one(elastic):
    assert wait_for_replicas(elastic, "Embedder", 1) < SCALE_TIMEOUT_S
    stop = threading.Event()
    statuses: list[int] = []

    def ingest(worker: int) -> None:
        with httpx.Client(base_url=elastic.url, headers={"X-API-Key": KEY}, timeout=120) as client:
            batch = 0
            while not stop.is_set():
                docs = [{"id": f"w{worker}-{batch}-{n}", "text": f"{worker} {batch} {n} {TEXT}"} for n in range(16)]
                statuses.append(client.post("/embed/", json={"documents": docs}).status_code)
                batch += 1

    with ThreadPoolExecutor(4) as pool:
        for worker in range(4):
            pool.submit(ingest, worker)
        try:
            wait_for_replicas(elastic, "Embedder", 2)  # up under load
            assert replicas(elastic, "ChromaStore") == 1
        finally:
            stop.set()
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    wait_for_replicas(elastic, "Embedder", 1)  # and down after it
    assert replicas(elastic, "ChromaStore") == 1
    assert httpx.get(f"{elastic.url}/healthz/", timeout=10).json()["status"] == "ok"
