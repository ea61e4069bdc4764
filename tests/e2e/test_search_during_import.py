"""A search is answered while a long import is being embedded, whichever way queries are embedded
(in the Ingress, as serve_config.yaml ships; or by the Embedder's query lane, as on a GPU).

Proved by order, not by time: the import is seen running in the Embedder (GET /healthz/), a search
is sent, and its answer arrives while the import is still unanswered and still being embedded.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.instance import ServeInstance

pytestmark = pytest.mark.e2e

KEY = "import-api-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
# Three documents of 50,000 characters, chunked: about 190 chunks for the model, about 6 s on 2
# idle cores, far longer than a search; and well inside the service's 60 s request limit even on a
# machine busy with other work, so that the import's own 200 is part of the proof.
SENTENCE = "Mitochondria in the muscle cells of older mice divide less often after a fast of two days. "
IMPORTED = 3
LONG = (SENTENCE * (50_000 // len(SENTENCE)))[:50_000]
IMPORT = {"chunking": True, "documents": [{"id": f"long-{n}", "text": f"{n} {LONG}"} for n in range(IMPORTED)]}
WAIT_S = 120.0


@pytest.fixture(scope="module", params=["ingress", "embedder"])
def instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    workdir = tmp_path_factory.mktemp(f"import-{request.param}")
    env = {"TENANT_ID": "importing", "PLAN": "pro", "PERSIST_DIR": str(workdir / "data"), "API_KEY": KEY}
    # One Embedder replica, so /healthz/ reports the replica doing the import.
    one = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
    served = ServeInstance(workdir, env, deployments={"Embedder": one}, args={"query_embedding": request.param})
    served.start()
    yield served
    served.stop()


def documents_pending(client: httpx.Client) -> int:
    """Texts the Embedder was asked to embed as documents and has not answered yet."""
    health = client.get("/healthz/")
    assert health.status_code == 200, health.text
    return int(health.json()["deployments"]["Embedder"]["detail"]["documents_pending"])


def test_a_search_is_answered_while_a_long_import_is_embedded(instance):
    with httpx.Client(base_url=instance.url, headers=HEADERS, timeout=WAIT_S) as client, ThreadPoolExecutor(1) as pool:
        seed = client.post("/embed/", json={"documents": [{"id": "short", "text": SENTENCE}]})
        assert seed.status_code == 200, seed.text
        importing = pool.submit(client.post, "/embed/", json=IMPORT)
        deadline = time.monotonic() + WAIT_S
        while documents_pending(client) == 0:
            assert not importing.done(), f"the import ended before it was seen running: {importing.result().text}"
            assert time.monotonic() < deadline, "the import never reached the Embedder"
            time.sleep(0.05)

        found = client.post("/search/", json={"query": "do mitochondria divide after fasting", "top_k": 3})

        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == "short"  # what was stored before the import began
        assert not importing.done(), "the import finished first: the search was not shown to overtake it"
        assert documents_pending(client) > 0, "the import is no longer being embedded"
        done = importing.result()
        assert done.status_code == 200, done.text
        assert set(done.json()["chunks"]) == {f"long-{n}" for n in range(IMPORTED)}
