"""One real service shared by every end-to-end test, started as in production (`python -m
deployments.launch`, which runs `serve run` on the shipped serve_config.yaml) on free ports, with
the real model and a real chromadb folder in a temporary directory (bench.instance)."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.instance import ServeInstance
from chromedb_client import Client

# A tenant id with a path, spaces and unicode, to prove any id the platform sends is safe.
E2E_TENANT = "e2e tenant/../ünïcode"
E2E_QUOTA = 60
E2E_API_KEY = "e2e-api-key-0123456789abcdef"
INTEGRATION_API_KEY = "integration-api-key-0123456789abcdef"
PAGE = 1_000  # the integration service's plan (pro) takes this many ids per request


def service_logs(launcher_pids: list[int]) -> list[Path]:
    """Every log Ray wrote for these launchers: a session folder is named after its driver's pid."""
    paths: list[Path] = []
    for pid in launcher_pids:
        for session in Path("/tmp/ray").glob(f"session_*_{pid}"):
            paths += session.glob("logs/**/*.log")
            paths += session.glob("logs/**/*.err")
            paths += session.glob("logs/**/*.out")
    return paths


class PatientTransport(httpx.HTTPTransport):
    """A well-behaved client: on a 429 it waits Retry-After and sends the request again. The plan's
    rate limits hold for the tests too, and a fast burst of test requests may meet them."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(10):
            response = super().handle_request(request)
            if response.status_code != 429:
                return response
            response.read()
            response.close()
            time.sleep(float(response.headers.get("retry-after", "1")))
        return response


def patient_client(url: str, **options: Any) -> httpx.Client:
    return httpx.Client(base_url=url, transport=PatientTransport(), **options)


def running_instance(
    tmp_path_factory: pytest.TempPathFactory, tenant: str, env: dict[str, str], **options: Any
) -> Iterator[ServeInstance]:
    """A started instance for `tenant` on a data folder of its own, stopped when the fixture ends;
    `options`: ServeInstance's changes to the shipped config."""
    workdir = tmp_path_factory.mktemp("instance")
    instance = ServeInstance(workdir, {"TENANT_ID": tenant, "PERSIST_DIR": str(workdir / "data"), **env}, **options)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    env = {"PLAN": "starter", "MAX_DOCS": str(E2E_QUOTA), "API_KEY": E2E_API_KEY}
    yield from running_instance(tmp_path_factory, E2E_TENANT, env)


@pytest.fixture(scope="session")
def integration_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    """A second real service for the frameworks' own test suites (LangChain, Haystack, the OpenAI
    client) and the evaluation, which empty the store before each of their tests (`emptied`):
    never the shared one above, whose documents other tests read. Started once, by the first test
    that asks for it."""
    yield from running_instance(tmp_path_factory, "integrations", {"PLAN": "pro", "API_KEY": INTEGRATION_API_KEY})


def emptied(client: Client) -> Client:
    """`integration_service` is shared by the frameworks' suites and the evaluation: each test
    starts from no documents at all."""
    ids = [document.id for document in client.iter_documents(page_size=PAGE, include=())]
    for start in range(0, len(ids), PAGE):
        client.delete(ids[start : start + PAGE])
    assert client.count()[0] == 0
    return client


@pytest.fixture(scope="session")
def open_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    """An instance without an API key, logging JSON with access lines (both off in the shipped
    config): one service for the tests of an open instance and of structured logs."""
    yield from running_instance(
        tmp_path_factory, "open", {}, logging_config={"encoding": "JSON", "enable_access_log": True}
    )


@pytest.fixture
def api(service: ServeInstance) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {E2E_API_KEY}"}
    with patient_client(service.url, timeout=60, headers=headers) as client:
        yield client
