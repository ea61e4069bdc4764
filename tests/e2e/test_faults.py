"""Faults under a real `python -m deployments.launch` (real model, real chromadb folder): a crash of
the whole service during ingest, a killed ChromaStore or Embedder replica, and a container stop
(SIGTERM) with a request in flight.

The tests share one tenant folder and run in this order on purpose: every test adds to the data of
the ones before, and each checks that *everything acknowledged so far* is still there, so a later
crash is a crash of a bigger, older index. Acknowledged means a 200 from /embed/. A write that got
anything else (a 503, a dropped connection) may or may not have been stored; its ids are deleted
before counting, so the count must then equal the number of acknowledged ids exactly.

None of this uses the shared `service` fixture: each test kills or stops its own instance.
"""

import os
import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bench.instance import REPO, ServeInstance, kill_session, session_processes
from deployments.runtime.calls import READ_TIMEOUT_S
from deployments.storage.index_check import read_header
from tests.e2e.conftest import service_logs

pytestmark = pytest.mark.e2e

API_KEY = "faults-api-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
# A search is a read: the service answers 503 once the store has not answered within READ_TIMEOUT_S.
SEARCH_TIMEOUT_S = READ_TIMEOUT_S + 5.0
# A write waits at most HANDOVER_TIMEOUT_S for a replica, then for its embedding and storing, which
# on a busy machine may take a while: past the service's own request_timeout_s it would be a 408.
# No answer even by then is a hang.
CLIENT_TIMEOUT_S = yaml.safe_load((REPO / "serve_config.yaml").read_text())["http_options"]["request_timeout_s"] + 15.0
RECOVERY_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 60.0
# Re-embedding the tenant's few thousand documents after its index was found broken.
REBUILD_TIMEOUT_S = 300.0
BATCH = 16
WRITERS = 4
# chromadb's default hnsw sync_threshold (chromadb/api/collection_configuration.py).
SYNC_THRESHOLD = 1000
DIMENSION = 384  # the default model's (all-MiniLM-L6-v2), as this tenant runs it
# A query's limit is 2000 characters; the first 1500 of a long text are well past the model's
# window, so they embed exactly as the stored (truncated) document did.
QUERY_CHARS = 1500
# Index-load failures as chromadb words them (upstream reports: "Error loading hnsw index",
# "Error constructing hnsw segment reader", "Nothing found on disk"), and any other HNSW error.
INDEX_FAILURE = re.compile(r"hnsw|segment reader|nothing found on disk|index.{0,40}(corrupt|fail)", re.IGNORECASE)
# The store's own words when it finds a broken index at start and rebuilds it (a repair, not a failure).
INDEX_REPAIR = re.compile(r"rebuilt from the kept vectors|rebuilding the vector index|vector index ready")
# kill -9 of the whole service: once in `make test`; `make faults` (the long version) crashes it
# FAULT_CRASHES=3 times per run, on an index bigger each time, and repeats the whole module.
CRASHES = int(os.environ.get("FAULT_CRASHES", "1"))
# Made-up words, so that texts are distinct and none is near another by chance.
SYLLABLES = ["ba", "ko", "mi", "ru", "te", "sa", "no", "vi", "le", "da", "po", "gu", "zen", "fa", "hi", "lu"]
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]


# --- the processes of one instance ------------------------------------------------------------


def replica_pids(instance: ServeInstance, deployment: str) -> set[int]:
    assert instance.process is not None
    title = f"ServeReplica:chromedb:{deployment}"
    return {pid for pid, cmdline in session_processes(instance.process.pid) if title in cmdline}


# --- the tenant: one folder, restarted instances, and what was acknowledged -------------------------------


@dataclass
class Outcome:
    started: float
    seconds: float
    status: int | str  # an HTTP status, or the name of the client exception
    body: str = ""
    path: str = ""


@dataclass
class Tenant:
    workdir: Path
    instance: ServeInstance
    launchers: list[int] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> text, every 200 from /embed/
    vectors: dict[str, list[float]] = field(default_factory=dict)  # id -> the vector it was sent with
    uncertain: dict[str, str] = field(default_factory=dict)  # sent, answered otherwise (or not at all)
    last_batches: list[list[str]] = field(default_factory=list)  # each writer's last acknowledged ids
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.instance.url

    def start(self) -> None:
        """A fresh launcher on the same folder (new ports: a killed instance's may linger)."""
        self.instance = ServeInstance(self.workdir, self.instance.env)
        self.instance.start()
        assert self.instance.process is not None
        self.launchers.append(self.instance.process.pid)

    def crash(self) -> None:
        """kill -9 of the whole service, as a container kill does: the launcher's process group,
        then every other process of its session (Ray's workers and HAProxy have groups of their own)."""
        assert self.instance.process is not None
        pid = self.instance.process.pid
        os.killpg(pid, signal.SIGKILL)
        kill_session(pid)
        self.instance.process.wait()
        self.instance.process = None
        deadline = time.monotonic() + 10
        while session_processes(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not session_processes(pid), session_processes(pid)

    def record(self, documents: list[dict[str, Any]], outcome: Outcome) -> None:
        with self.lock:
            target = self.acknowledged if outcome.status == 200 else self.uncertain
            target.update((doc["id"], doc["text"]) for doc in documents)
            if outcome.status == 200:
                self.vectors.update((doc["id"], doc["embedding"]) for doc in documents if "embedding" in doc)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=HEADERS, timeout=CLIENT_TIMEOUT_S)


def documents(prefix: str, count: int, rng: random.Random, words: int = 12) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{n}", "text": " ".join(rng.choices(WORDS, k=words))} for n in range(count)]


def with_own_vectors(batch: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The documents with vectors of the tenant's own (random unit vectors): stored without a model run."""
    for doc in batch:
        vector = [rng.gauss(0, 1) for _ in range(DIMENSION)]
        length = sum(x * x for x in vector) ** 0.5
        doc["embedding"] = [x / length for x in vector]
    return batch


def post(client: httpx.Client, path: str, body: object) -> Outcome:
    started = time.monotonic()
    try:
        response = client.post(path, json=body)
    except httpx.HTTPError as exc:
        return Outcome(started, time.monotonic() - started, type(exc).__name__, path=path)
    return Outcome(started, time.monotonic() - started, response.status_code, response.text, path)


class Traffic:
    """Writer threads posting /embed/ batches of BATCH new documents back to back, and one thread
    searching for acknowledged texts, until stopped; every answer is kept."""

    def __init__(self, tenant: Tenant, tag: str, writers: int = WRITERS, search: bool = True) -> None:
        self.tenant = tenant
        self.tag = tag
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(n,)) for n in range(writers)]
        if search:
            self._threads.append(threading.Thread(target=self._search))

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _write(self, writer: int) -> None:
        rng = random.Random(f"{self.tag}-{writer}")
        last: list[str] = []
        with self.tenant.client() as client:
            batch = 0
            while not self._stop.is_set():
                docs = documents(f"{self.tag}-w{writer}-b{batch}", BATCH, rng)
                outcome = post(client, "/embed/", {"documents": docs})
                self.tenant.record(docs, outcome)
                self.outcomes.append(outcome)
                if outcome.status == 200:
                    last = [doc["id"] for doc in docs]
                elif outcome.status in (429, 503):
                    time.sleep(0.2)
                elif isinstance(outcome.status, str):  # no service to talk to (yet)
                    time.sleep(0.5)
                batch += 1
        if last:
            with self.tenant.lock:
                self.tenant.last_batches.append(last)

    def _search(self) -> None:
        rng = random.Random(self.tag)
        with self.tenant.client() as client:
            while not self._stop.is_set():
                with self.tenant.lock:
                    texts = list(self.tenant.acknowledged.values())
                query = rng.choice(texts) if texts else "anything"
                self.outcomes.append(post(client, "/search/", {"query": query[:QUERY_CHARS], "top_k": 5}))
                time.sleep(0.05)


def forget_uncertain(tenant: Tenant) -> None:
    """Delete every id whose write was not acknowledged: afterwards the store holds exactly the
    acknowledged ids, if none was lost."""
    with tenant.lock:
        ids = [id_ for id_ in tenant.uncertain if id_ not in tenant.acknowledged]
        tenant.uncertain.clear()
    with tenant.client() as client:
        for start in range(0, len(ids), 256):
            for _ in range(20):
                response = client.post("/delete/", json={"ids": ids[start : start + 256]})
                if response.status_code != 429:
                    break
                time.sleep(0.5)
            assert response.status_code == 200, response.text


def assert_nothing_acknowledged_is_lost(tenant: Tenant, sample: int = 48) -> None:
    """The count equals the acknowledged ids exactly (after deleting the unacknowledged ones), and
    a search for the exact text of each writer's last acknowledged batch, and of a random sample of
    the rest, finds its id: the vector index answers for them, not just the metadata."""
    forget_uncertain(tenant)
    with tenant.client() as client:
        health = client.get("/healthz/")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert health.json()["count"] == len(tenant.acknowledged), "acknowledged documents lost (or extra ones kept)"
        checked = {id_ for batch in tenant.last_batches for id_ in batch}
        checked |= set(
            random.Random(len(tenant.acknowledged)).sample(
                sorted(tenant.acknowledged), min(sample, len(tenant.acknowledged))
            )
        )

        def found(id_: str) -> bool:
            # A document sent with its own vector is found by that vector, the others by their text.
            own = tenant.vectors.get(id_)
            query = {"vector": own} if own else {"query": tenant.acknowledged[id_][:QUERY_CHARS]}
            response = client.post("/search/", json={**query, "top_k": 5})
            assert response.status_code == 200, response.text
            return id_ in [hit["id"] for hit in response.json()["results"]]

        with ThreadPoolExecutor(8) as pool:
            missing = [id_ for id_, ok in zip(checked, pool.map(found, checked), strict=True) if not ok]
    assert not missing, f"acknowledged documents the search cannot find: {missing[:10]}"
    tenant.last_batches.clear()


def stop_lines(tenant: Tenant) -> list[str]:
    """The launcher's line about each of its stops so far (its log holds every start of this tenant)."""
    return [
        line for line in tenant.instance.log_path.read_text().splitlines() if "chromedb-instance: stopping:" in line
    ]


def index_lines(tenant: Tenant, pattern: re.Pattern[str]) -> list[str]:
    """Lines matching `pattern` in the launcher's log and every replica's log of every launcher
    this tenant has had."""
    paths = [tenant.instance.log_path, *service_logs(tenant.launchers)]
    return [
        f"{path.name}: {line}"
        for path in paths
        for line in path.read_text(errors="replace").splitlines()
        if pattern.search(line)
    ]


def index_failures(tenant: Tenant) -> list[str]:
    """Lines about the vector index failing, other than the store's own repair of a broken one."""
    return [line[:300] for line in index_lines(tenant, INDEX_FAILURE) if not INDEX_REPAIR.search(line)]


def store_index(tenant: Tenant) -> dict[str, object]:
    """The ChromaStore's index state as /healthz/ reports it ("ready", or "rebuilding" with progress)."""
    health = httpx.get(f"{tenant.url}/healthz/", timeout=CLIENT_TIMEOUT_S)
    assert health.status_code == 200, health.text
    index: dict[str, object] = health.json()["deployments"]["ChromaStore"]["detail"]["index"]
    return index


def wait_until_index_ready(tenant: Tenant) -> dict[str, object]:
    deadline = time.monotonic() + REBUILD_TIMEOUT_S
    while (index := store_index(tenant))["state"] != "ready":
        assert time.monotonic() < deadline, f"index still {index} after {REBUILD_TIMEOUT_S:g}s"
        time.sleep(1)
    return index


def unexpected(outcomes: list[Outcome], allowed: set[int | str]) -> list[Outcome]:
    return [o for o in outcomes if o.status not in allowed]


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    workdir = tmp_path_factory.mktemp("faults")
    env = {
        "TENANT_ID": "faults",
        # pro: its rate limits (1000 requests, 5000 documents per second) stay out of the way here.
        "PLAN": "pro",
        "MAX_DOCS": "50000",
        "PERSIST_DIR": str(workdir / "data"),
        "API_KEY": API_KEY,
    }
    tenant = Tenant(workdir, ServeInstance(workdir, env))
    tenant.start()
    yield tenant
    tenant.instance.stop()
    for pid in tenant.launchers:
        kill_session(pid)


# --- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("deployment", ["ChromaStore", "Embedder"])
def test_a_killed_replica_is_replaced_and_requests_meanwhile_get_503_never_a_hang(tenant, deployment):
    """kill -9 of the deployment's replica processes while writers and a searcher run, and while a
    large /embed/ is being embedded: Serve starts a new replica; every request meanwhile gets a 200
    or a JSON 503 (a search within SEARCH_TIMEOUT_S), never a 500, a 408, a hang or a dropped
    connection; a call that was inside a killed Embedder gets its 503 at once; nothing acknowledged
    is lost."""
    old = replica_pids(tenant.instance, deployment)
    assert old, f"no {deployment} replica process found"
    rng = random.Random(deployment)
    slow_docs = documents(f"inflight-{deployment}", 128, rng, words=300)
    with Traffic(tenant, f"kill-{deployment}") as traffic:
        time.sleep(2)
        # The large request's own client waits as long as the model may take on this machine: what is
        # bounded is the wait for a replica, not the embedding (its outcome is checked below).
        with (
            ThreadPoolExecutor(1) as pool,
            httpx.Client(base_url=tenant.url, headers=HEADERS, timeout=300) as slow_client,
        ):
            slow = pool.submit(post, slow_client, "/embed/", {"documents": slow_docs})
            wait_until_embedding_documents(tenant, slow, more_than=WRITERS * BATCH)  # the writers send fewer
            for pid in old:  # all of them (the Embedder may have scaled to two), so the large call dies
                os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            in_flight = slow.result()
            answered_after_kill = time.monotonic() - killed
        tenant.record(slow_docs, in_flight)
        deadline = killed + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            new = replica_pids(tenant.instance, deployment) - old
            health = httpx.get(f"{tenant.url}/healthz/", timeout=5)
            if new and health.status_code == 200:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no healthy {deployment} replica {RECOVERY_TIMEOUT_S:g}s after the kill: {health.text}")
        recovered = time.monotonic()
        time.sleep(2)  # and serving again

    bad = unexpected([*traffic.outcomes, in_flight], {200, 503})
    assert not bad, f"neither 200 nor 503: {bad[:5]}\n{tenant.instance.log_tail()}"
    for outcome in [*traffic.outcomes, in_flight]:
        if outcome.status == 503:
            assert httpx.Response(503, text=outcome.body).json()["error"] == "unavailable", outcome
    searches = [outcome for outcome in traffic.outcomes if outcome.path == "/search/"]
    assert searches
    slow_searches = [outcome for outcome in searches if outcome.seconds >= SEARCH_TIMEOUT_S]
    assert not slow_searches, f"searches answered after {SEARCH_TIMEOUT_S:g} s: {slow_searches[:5]}"
    if deployment == "Embedder":  # its calls died with the replica
        assert in_flight.status == 503 and answered_after_kill < 5, (in_flight, answered_after_kill)
    assert any(o.status == 200 and o.started > recovered for o in traffic.outcomes), "not serving again"
    assert_nothing_acknowledged_is_lost(tenant)


def wait_until_embedding_documents(tenant: Tenant, request: Future[Outcome], more_than: int = 0) -> None:
    """Until the Embedder reports more than `more_than` documents being embedded (GET /healthz/):
    the request's, when other clients send fewer at a time."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while not request.done() and time.monotonic() < deadline:
        detail = httpx.get(f"{tenant.url}/healthz/", timeout=CLIENT_TIMEOUT_S).json()["deployments"]["Embedder"]
        if detail.get("detail", {}).get("documents_pending", 0) > more_than:
            return
        time.sleep(0.05)
    pytest.fail(f"the large request was never seen being embedded (done: {request.done()})")


def test_sigterm_finishes_the_request_in_flight_then_exits_0_with_the_data_on_disk(tenant):
    """A container stop: SIGTERM to the launcher alone while an /embed/ of a few seconds is being
    embedded. That request still completes with a 200 (it is well inside the launcher's
    DRAIN_TIMEOUT_S, even on a busy machine); requests sent after the signal get an answer (200 or
    a JSON 503) or a refused connection, never a 500, a hang or a connection dropped mid-request;
    an idle keep-alive connection (as every client's pool holds) does not hold the drain until its
    timeout; the launcher exits 0 within EXIT_TIMEOUT_S; a restart on the same folder has every
    acknowledged document, the in-flight one's included."""
    process = tenant.instance.process
    assert process is not None
    stops_before = stop_lines(tenant)
    # About 3 s of embedding on 2 idle cores: a request that may outlast DRAIN_TIMEOUT_S is rightly
    # cut off by a stop (README: Reliability), so it must not be the one this test sends.
    slow_docs = documents("sigterm-inflight", 24, random.Random("sigterm"), words=300)
    after: list[Outcome] = []
    stopped = threading.Event()

    def probe() -> None:
        with tenant.client() as client:
            while not stopped.is_set():
                after.append(post(client, "/search/", {"query": "a question asked during shutdown"}))
                time.sleep(0.25)

    with ThreadPoolExecutor(2) as pool, tenant.client() as client, tenant.client() as idle:
        assert idle.get("/count/").status_code == 200  # its connection stays open, idle, from here on
        slow = pool.submit(post, client, "/embed/", {"documents": slow_docs})
        wait_until_embedding_documents(tenant, slow)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        prober = pool.submit(probe)
        try:
            code = process.wait(timeout=EXIT_TIMEOUT_S)
        except Exception:
            code = None
        exited = time.monotonic() - signalled
        time.sleep(1)  # a few probes against the stopped service too
        stopped.set()
        prober.result()
        in_flight = slow.result()
    tenant.record(slow_docs, in_flight)
    log = tenant.instance.log_tail(30)
    tenant.instance.process = None
    survivors = session_processes(process.pid)
    kill_session(process.pid)
    tenant.start()  # first, so that the tests after this one have a service whatever happens here

    assert in_flight.status == 200, f"the request in flight: {in_flight}\n{log}"
    assert in_flight.started + in_flight.seconds > signalled, f"answered before the signal: {in_flight}"
    assert code == 0, f"the launcher {'still ran' if code is None else f'exited {code}'} after {exited:.1f}s\n{log}"
    (stopped_how,) = stop_lines(tenant)[len(stops_before) :]
    assert "HAProxy drained in" in stopped_how, f"the drain waited for the idle connection: {stopped_how}"
    bad = unexpected(after, {200, 503, "ConnectError"})
    assert not bad, f"requests after SIGTERM, neither answered nor refused: {bad[:5]}\n{log}"
    assert not survivors, f"processes outlived a clean stop: {survivors}"
    assert_nothing_acknowledged_is_lost(tenant)
    assert not index_failures(tenant)


def test_a_broken_index_found_at_start_is_moved_aside_and_rebuilt(tenant):
    """What a SIGKILL mid-write can leave (the service killed with SIGKILL, then the damage made on
    purpose): chromadb's HNSW header counting records that were never written, which chromadb
    cannot load. The store finds it before opening, moves it to quarantine/, comes up healthy at
    once with every text and count, restores every vector (the model's and the tenant's own) from
    its kept copy in the background without running the model (/healthz/ shows the progress), and
    ends with every acknowledged document searchable and its vector readable again."""
    # chromadb writes its HNSW files only every SYNC_THRESHOLD additions (the rest is replayed from
    # its log at start), so the earlier tests may have left none on disk: these make sure some are.
    # With vectors of their own, so that storing them runs no model: the model's are the earlier tests'.
    rng = random.Random("persisted")
    with tenant.client() as client:
        for start in range(0, SYNC_THRESHOLD + BATCH, 64):
            batch = with_own_vectors(documents(f"persisted-{start}", 64, rng), rng)
            outcome = post(client, "/embed/", {"documents": batch})
            assert outcome.status == 200, outcome
            tenant.record(batch, outcome)
    tenant.crash()
    data_dir = Path(tenant.instance.env["PERSIST_DIR"]) / "faults"
    (index,) = [path.parent for path in data_dir.glob("*/header.bin")]
    header = read_header(index)
    assert header.count > 0, "chromadb persisted no HNSW elements to break"
    # Half the elements the header counts, gone: what a write cut between header and data leaves.
    level0 = index / "data_level0.bin"
    os.truncate(level0, header.count * header.bytes_per_element // 2)
    tenant.start()

    with tenant.client() as client:
        assert client.get("/count/").json()["count"] >= len(tenant.acknowledged)
    index_state = wait_until_index_ready(tenant)
    assert isinstance(index_state["rebuilt"], int) and index_state["rebuilt"] > 0, index_state
    assert index_state["re_embedded"] == 0, f"the rebuild ran the model instead of reading kept vectors: {index_state}"
    (quarantined,) = (data_dir / "quarantine").iterdir()
    assert quarantined.name.startswith(index.name)
    assert len(index_lines(tenant, INDEX_REPAIR)) >= 2, "the repair is logged"
    assert_nothing_acknowledged_is_lost(tenant)
    sample = random.Random("vectors").sample(sorted(tenant.acknowledged), 64)
    with tenant.client() as client:
        got = client.post("/get/", json={"ids": sample, "include": ["embedding"]})
    assert got.status_code == 200, got.text
    assert all(len(document["embedding"]) == DIMENSION for document in got.json()["documents"])
    assert not index_failures(tenant)


@pytest.mark.parametrize("crash", range(1, CRASHES + 1))
def test_kill_9_of_the_whole_service_during_ingest_loses_no_acknowledged_write(tenant, crash):
    """Writers post /embed/ batches back to back; the whole service is killed with SIGKILL at a
    random moment (each crash another one, on a bigger index: chromadb can leave its HNSW files
    broken, see the test above); a new launcher on the same folder comes up healthy, repairs the
    index if it has to, holds every acknowledged document, finds them by search, and logs no
    index failure."""
    with Traffic(tenant, f"crash{crash}", search=False) as traffic:
        time.sleep(random.uniform(3, 6))
        tenant.crash()
    acknowledged = sum(o.status == 200 for o in traffic.outcomes)
    assert acknowledged > 0, traffic.outcomes[:5]
    assert not [o for o in traffic.outcomes if o.status == 500], "a 500 before the crash"

    tenant.start()
    index = wait_until_index_ready(tenant)
    repaired = index.get("rebuilt")
    print(f"crash {crash}: {acknowledged} acknowledged writes, index {'rebuilt' if repaired else 'intact'}")
    assert not repaired or index["re_embedded"] == 0, f"the rebuild ran the model, not the kept vectors: {index}"
    assert_nothing_acknowledged_is_lost(tenant)
    assert not index_failures(tenant)
