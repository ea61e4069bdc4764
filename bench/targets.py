"""The three things the benchmark runs the same workload against.

Each target opens its own copy of one pre-filled chromadb folder (the filler documents, same HNSW
configuration), ingests the real passages, and answers searches with the ids it found.
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import chromadb
import httpx
from chromadb.config import Settings as ChromaSettings

from bench.instance import ServeInstance, wait_until_up
from bench.measure import SearchFn
from bench.workload import Passage
from deployments.core.config import Settings, load_settings
from deployments.embedding.backends import EmbeddingBackend
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import TenantStore

TOP_K = 10


def batches(passages: list[Passage], size: int) -> list[list[Passage]]:
    return [passages[i : i + size] for i in range(0, len(passages), size)]


def answers_200(url: str) -> Callable[[], bool]:
    def up() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=2).status_code == 200
        return False

    return up


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a server as a container stop does (SIGTERM to it alone, so it shuts down what it
    started, HAProxy included), then kill whatever of its process group is left."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left
    process.wait()


def http_search(url: str) -> SearchFn:
    """A client of its own (one connection) searching the service at `url` through /search/."""
    client = httpx.Client(base_url=url, timeout=60)

    def search(query: str) -> list[str]:
        response = client.post("/search/", json={"query": query, "top_k": TOP_K})
        response.raise_for_status()
        return [hit["id"] for hit in response.json()["results"]]

    return search


class Service:
    """The product: `python -m deployments.launch` (`serve run` on the shipped config) over HTTP."""

    name = "service"

    def __init__(self, settings: Settings, config: str, workdir: Path, extra_env: dict[str, str]) -> None:
        tenant = {
            "TENANT_ID": settings.tenant_id,
            "PLAN": settings.plan,
            "MAX_DOCS": str(settings.quota),
            "PERSIST_DIR": str(settings.persist_dir),
            "MODEL_CACHE_DIR": str(settings.onnx_cache_dir),
        }
        self.instance = ServeInstance(workdir, {**tenant, **extra_env}, config=config)  # only the ports change
        self.url = self.instance.url
        self.log_path = self.instance.log_path

    def start(self) -> float:
        return self.instance.start()

    @property
    def pid(self) -> int | None:
        return self.instance.process.pid if self.instance.process else None

    def ingest(self, passages: list[Passage], batch_size: int, clients: int) -> None:
        def send(batch: list[Passage]) -> None:
            documents = [{"id": p.id, "text": p.text} for p in batch]
            response = httpx.post(f"{self.url}/embed/", json={"documents": documents}, timeout=600)
            response.raise_for_status()

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, batches(passages, batch_size)))

    def make_search(self) -> SearchFn:
        return http_search(self.url)

    def stop(self) -> None:
        self.instance.stop()


class InProcess:
    """The limit: the same backends (`backend` for queries, `bulk` for documents, as the service
    runs them) and the same store class called as plain functions."""

    name = "in-process"
    pid = None

    def __init__(self, settings: Settings, backend: EmbeddingBackend, bulk: EmbeddingBackend) -> None:
        self.settings = settings
        self.backend = backend
        self.bulk = bulk
        self.store: TenantStore | None = None

    def start(self) -> float:
        started = time.perf_counter()
        self.store = TenantStore(self.settings)
        return time.perf_counter() - started

    def ingest(self, passages: list[Passage], batch_size: int, clients: int) -> None:
        assert self.store is not None
        for batch in batches(passages, batch_size):
            texts = [p.text for p in batch]
            self.store.upsert([p.id for p in batch], texts, self.bulk.encode(texts), [{} for _ in batch])

    def make_search(self) -> SearchFn:
        store = self.store
        assert store is not None

        def search(query: str) -> list[str]:
            found = store.search.many([Query(self.backend.encode([query])[0], TOP_K)])[0]
            assert isinstance(found, list), found
            return [hit["id"] for hit in found]

        return search

    def stop(self) -> None:
        self.store = None


class ChromaServer:
    """What a tenant would run instead: `chroma run` on the same folder, the client embedding
    (queries with `backend`, documents with `bulk`)."""

    name = "chroma server"

    def __init__(
        self, settings: Settings, backend: EmbeddingBackend, bulk: EmbeddingBackend, port: int, workdir: Path
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.bulk = bulk
        self.port = port
        self.log_path = workdir / "chroma.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.collection: Any = None

    def start(self) -> float:
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [chroma, "run", "--path", str(self.settings.data_dir), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        seconds = wait_until_up(answers_200(f"http://127.0.0.1:{self.port}/api/v2/heartbeat"), self.process, started)
        self.collection = self._collection()
        return seconds

    def _collection(self) -> Any:
        client = chromadb.HttpClient(
            host="127.0.0.1", port=self.port, settings=ChromaSettings(anonymized_telemetry=False)
        )
        return client.get_collection(self.settings.collection_name, embedding_function=None)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def ingest(self, passages: list[Passage], batch_size: int, clients: int) -> None:
        def send(batch: list[Passage]) -> None:
            texts = [p.text for p in batch]
            self.collection.upsert(ids=[p.id for p in batch], documents=texts, embeddings=self.bulk.encode(texts))

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, batches(passages, batch_size)))

    def make_search(self) -> SearchFn:
        collection = self._collection()

        def search(query: str) -> list[str]:
            found = collection.query(
                query_embeddings=self.backend.encode([query]),
                n_results=TOP_K,
                include=["documents", "metadatas", "distances"],
            )
            return list(found["ids"][0])

        return search

    def stop(self) -> None:
        stop(self.process)


Target = Service | InProcess | ChromaServer
TargetFactory = Callable[[Settings, Path], Target]


@contextlib.contextmanager
def own_service(
    workdir: Path, cache_dir: Path, quota: int, tenant_id: str, plan: str = "starter"
) -> Iterator[tuple[Service, str]]:
    """The shipped launcher and config on free ports, with an API key as in production; its log is
    kept in `cache_dir` after the run."""
    settings = load_settings(
        tenant_id=tenant_id,
        plan=plan,
        max_docs=quota,
        persist_dir=workdir / "data",
        model_cache_dir=cache_dir / "model-cache",  # the ONNX export `make bench` keeps
    )
    api_key = secrets.token_hex(16)
    service = Service(settings, "serve_config.yaml", workdir, {"API_KEY": api_key})
    try:
        print(f"starting the service (log: {service.log_path}) ...", flush=True)
        print(f"healthy after {service.start():.1f} s", flush=True)
        yield service, api_key
    finally:
        service.stop()
        # The workdir goes with the run: keep the log, the first thing to read when a verdict fails.
        kept = cache_dir / f"{tenant_id}-service.log"
        if service.log_path.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(service.log_path.read_bytes())
            print(f"service log kept in {kept}", flush=True)
