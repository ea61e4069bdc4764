"""`make bench-scale` / `python -m bench.scale`: what a tenant costs as it grows, on this machine.

For each size (default 2,000, 10,000 and 100,000 documents: the first is searched exactly,
storage.exact_search; `--sizes 2000,10000,100000,1000000` adds the million, about an hour to
build here) a tenant is built through the HTTP API of the service as it runs in production
(`serve run`, enterprise plan), documents bringing their own vectors so that the model is not the
bottleneck: short synthetic texts with metadata (so filters and keyword search have work),
vectors clustered as a model's are. Then, one client at a time, it measures search p50/p99 in each
mode and with a filter, recall@10 of semantic search against exact search (numpy, the same
vectors), idle memory (PSS of every process), disk bytes per document, a snapshot's time and size,
start to first 200, and kill -9 of the whole service to `index: ready`. Built tenants are cached
under `--cache-dir`, so a second run only measures. Never part of `make test`.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import chromadb
import httpx
import numpy as np
from chromadb.config import Settings as ChromaSettings

from bench import measure
from bench.instance import REPO, ServeInstance, kill_session
from deployments.core.config import load_settings
from deployments.core.types import Vectors

DIMENSION = 384
WRITE_BATCH = 1_000
WRITERS = 2
QUERIES = 200
TOP_K = 10
CLUSTERS = 256  # a model's vectors cluster by subject: uniform random ones would be HNSW's worst case
WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "su", "ta") for b in range(400)]
READY_TIMEOUT_S = 3_600


def vectors_for(start: int, count: int) -> Vectors:
    """Document vectors start..start+count, the same on every run (seeded per block of 1,000)."""
    centres = np.random.default_rng(0).normal(size=(CLUSTERS, DIMENSION)).astype(np.float32)
    blocks = []
    for block in range(start // WRITE_BATCH, (start + count + WRITE_BATCH - 1) // WRITE_BATCH):
        rng = np.random.default_rng(1_000 + block)
        noise = rng.normal(size=(WRITE_BATCH, DIMENSION)).astype(np.float32)
        blocks.append(centres[rng.integers(0, CLUSTERS, WRITE_BATCH)] + 0.8 * noise)
    every = np.concatenate(blocks)[start % WRITE_BATCH :][:count]
    return cast(Vectors, (every / np.linalg.norm(every, axis=1, keepdims=True)).astype(np.float32))


def text_of(n: int) -> str:
    rng = np.random.default_rng(n)
    return f"record {n}: " + " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 10))


def metadata_of(n: int) -> dict[str, Any]:
    return {"topic": n % 100, "year": 2000 + n % 25, "kind": ("note", "mail", "page")[n % 3]}


def build(url: str, size: int) -> float:
    """Write `size` documents with their vectors through /embed/; returns documents/s."""
    starts = list(range(0, size, WRITE_BATCH))
    started = time.perf_counter()

    def writer(client_number: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as client:
            for start in starts[client_number::WRITERS]:
                count = min(WRITE_BATCH, size - start)
                vectors = vectors_for(start, count)
                documents = [
                    {"id": f"doc-{n}", "text": text_of(n), "metadata": metadata_of(n), "embedding": vector.tolist()}
                    for n, vector in zip(range(start, start + count), vectors, strict=True)
                ]
                response = client.post("/embed/", json={"documents": documents})
                response.raise_for_status()

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    return size / (time.perf_counter() - started)


def latencies(url: str, bodies: list[dict[str, Any]]) -> tuple[list[float], list[list[str]]]:
    times, found = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/search/", json=bodies[0]).raise_for_status()  # warm-up
        for body in bodies:
            started = time.perf_counter()
            response = client.post("/search/", json=body)
            times.append(1000 * (time.perf_counter() - started))
            response.raise_for_status()
            found.append([hit["id"] for hit in response.json()["results"]])
    return times, found


def index_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            health = httpx.get(f"{url}/healthz/", timeout=5)
            store = health.json()["deployments"]["ChromaStore"]["detail"]
            return health.status_code == 200 and store["index"]["state"] == "ready"
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False

    return ready


def wait_for(condition: Callable[[], bool], timeout_s: float) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"not ready after {timeout_s:.0f} s")
        time.sleep(0.5)
    return time.perf_counter() - started


def index_against_exact(persist: Path, corpus: Vectors, queries: Vectors) -> dict[str, float]:
    """One query at a time, in this process, on the folder the service wrote (stopped): p50 ms of
    chromadb's HNSW query against exact search by brute force over the same vectors (numpy): below
    the size where exact is as fast, an index buys nothing. Both only find ids (no texts). And
    chromadb's lookup of the ids a 1 % filter matches, alone: the part of a filtered search that
    is not the vector search."""
    settings = load_settings(_env_file=None, tenant_id="scale", persist_dir=persist)
    client = chromadb.PersistentClient(path=str(settings.data_dir), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(settings.collection_name, embedding_function=None)

    def index(query: Vectors, _: int) -> object:
        return collection.query(query_embeddings=query[None, :], n_results=TOP_K, include=[])

    def exact(query: Vectors, _: int) -> object:
        return np.argpartition(-(corpus @ query), TOP_K)[:TOP_K]

    def filter_lookup(query: Vectors, topic: int) -> object:
        return collection.get(where={"topic": topic}, include=[])

    timed = {}
    searches = {"index_ms": index, "exact_ms": exact, "filter_lookup_ms": filter_lookup}
    for name, search in searches.items():
        search(queries[0], 0)  # warm-up: the index loads on its first query
        times = []
        for n, query in enumerate(queries):
            started = time.perf_counter()
            search(query, n % 100)
            times.append(1000 * (time.perf_counter() - started))
        timed[name] = measure.percentile(times, 50)
    return timed


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure_size(size: int, cache: Path) -> dict[str, Any]:
    persist = cache / str(size)
    built = persist / "built.json"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-scale-{size}-"))
    instance = ServeInstance(workdir, {"TENANT_ID": "scale", "PLAN": "enterprise", "PERSIST_DIR": str(persist)})
    row: dict[str, Any] = {"documents": size}
    try:
        if not built.exists():
            print(f"{size:,}: building through the API", flush=True)
            shutil.rmtree(persist, ignore_errors=True)  # what an interrupted build left
            instance.start()
            write_per_s = build(instance.url, size)
            instance.stop()
            built.write_text(json.dumps({"write_per_s": write_per_s}))
        row["write_per_s"] = json.loads(built.read_text())["write_per_s"]
        row["start_s"] = instance.start()
        assert httpx.get(f"{instance.url}/count/").json()["count"] == size

        rng = np.random.default_rng(size)
        picked = rng.integers(0, size, QUERIES)
        corpus = vectors_for(0, size)
        noise = rng.normal(size=(QUERIES, DIMENSION)).astype(np.float32)
        # Near a stored document (cosine about 0.9), as a query about it is.
        queries = corpus[picked] + 0.5 * noise / np.sqrt(DIMENSION)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        words = [" ".join(text_of(int(n)).split()[2:5]) for n in picked]
        modes = {
            "semantic": [{"vector": q.tolist(), "top_k": TOP_K} for q in queries],
            "keyword": [{"query": w, "mode": "keyword", "top_k": TOP_K} for w in words],
            "hybrid": [{"query": w, "mode": "hybrid", "top_k": TOP_K} for w in words],
            "filtered": [
                {"vector": q.tolist(), "top_k": TOP_K, "where": {"topic": int(n) % 100}}
                for q, n in zip(queries, picked, strict=True)
            ],
        }
        for mode, bodies in modes.items():
            times, found = latencies(instance.url, bodies)
            row[f"{mode}_p50"], row[f"{mode}_p99"] = measure.percentile(times, 50), measure.percentile(times, 99)
            if mode == "semantic":
                ids = [f"doc-{n}" for n in range(size)]
                row["recall"] = measure.recall_at(found, measure.exact_top_ids(corpus, ids, queries, TOP_K), TOP_K)
        time.sleep(measure.IDLE_SETTLE_S)
        assert instance.process is not None
        row["pss_mb"] = measure.pss_mb(instance.process.pid)
        snapshots = persist / "snapshots"
        data_bytes = folder_bytes(persist) - (folder_bytes(snapshots) if snapshots.exists() else 0)
        row["disk_per_doc"] = data_bytes / size
        started = time.perf_counter()
        snapshot = httpx.post(f"{instance.url}/snapshot/", timeout=3_600).json()
        row["snapshot_s"] = time.perf_counter() - started
        row["snapshot_mb"] = folder_bytes(Path(snapshot["path"])) / 2**20
        shutil.rmtree(snapshots, ignore_errors=True)

        # kill -9 of the whole service, as a container kill does, then a new start on the folder.
        os.killpg(instance.process.pid, signal.SIGKILL)
        kill_session(instance.process.pid)
        instance.process.wait()
        instance.process = None
        started = time.perf_counter()
        row["kill9_first_200_s"] = instance.start()
        wait_for(index_ready(instance.url), READY_TIMEOUT_S)
        row["kill9_ready_s"] = time.perf_counter() - started
        instance.stop()
        row.update(index_against_exact(persist, corpus, queries))
    finally:
        instance.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| documents | write/s | semantic p50 / p99 ms | keyword | hybrid | filtered semantic | recall@10 "
        "| idle PSS MB | disk bytes/doc | start to first 200 s | kill -9 to first 200 / ready s "
        "| snapshot s, MB | in-process p50 ms: index / exact / filter lookup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['documents']:,} | {r['write_per_s']:,.0f} | {r['semantic_p50']:.1f} / {r['semantic_p99']:.1f} "
            f"| {r['keyword_p50']:.1f} / {r['keyword_p99']:.1f} | {r['hybrid_p50']:.1f} / {r['hybrid_p99']:.1f} "
            f"| {r['filtered_p50']:.1f} / {r['filtered_p99']:.1f} | {r['recall']:.3f} | {r['pss_mb']:,.0f} "
            f"| {r['disk_per_doc']:,.0f} | {r['start_s']:.1f} "
            f"| {r['kill9_first_200_s']:.1f} / {r['kill9_ready_s']:.1f} "
            f"| {r['snapshot_s']:.1f}, {r['snapshot_mb']:,.0f} "
            f"| {r['index_ms']:.2f} / {r['exact_ms']:.2f} / {r['filter_lookup_ms']:.1f} |"
        )
    if len(rows) > 1:
        small, big = rows[-2], rows[-1]
        added = big["documents"] - small["documents"]
        memory = (big["pss_mb"] - small["pss_mb"]) * 2**20 / added
        disk = (big["disk_per_doc"] * big["documents"] - small["disk_per_doc"] * small["documents"]) / added
        lines.append(
            f"\n{big['documents']:,} against {small['documents']:,}: semantic p50 "
            f"{big['semantic_p50'] / small['semantic_p50']:.2f}x, filtered p50 "
            f"{big['filtered_p50'] / small['filtered_p50']:.2f}x; per added document {memory:,.0f} bytes of "
            f"memory, {disk:,.0f} bytes of disk"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--sizes", default="2000,10000,100000", help="comma-separated document counts, ascending")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache" / "scale")
    args = parser.parse_args(argv)
    rows = []
    for size in (int(size) for size in args.sizes.split(",")):
        rows.append(measure_size(size, args.cache_dir))
        print(json.dumps({key: round(value, 3) for key, value in rows[-1].items()}), flush=True)
    print(f"\none client at a time, {QUERIES} queries per mode, top {TOP_K}\n\n{table(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
