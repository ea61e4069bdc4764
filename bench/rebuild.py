"""`make bench-rebuild` / `python -m bench.rebuild`: how fast a broken index comes back, and what
keeping a copy of every vector costs, on this machine.

A tenant of N records whose vectors it supplied (so the model is no part of it) is written through
the tenant store in the API's largest batches; its HNSW index is then broken as a kill -9 mid-write
leaves it (the header counting records never written), and the ChromaStore rebuilds it from the
kept vectors, with an Embedder that fails if it is ever called. Then the upgrade of a format-1
folder (the copy removed) is timed. The same-run baseline is chromadb itself: the same vectors
upserted into a bare collection with the service's index configuration, i.e. what building the
HNSW graph costs here.
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from ray.serve import Deployment

from deployments.core.config import load_settings
from deployments.core.types import Vectors
from deployments.storage import data_format
from deployments.storage.chroma import HNSW_CONFIGURATION
from deployments.storage.index_check import read_header
from deployments.storage.kept_vectors import FILE as KEPT_FILE
from deployments.storage.tenant_store import TenantStore
from deployments.store import ChromaStore

BATCH = 1_000  # the largest plan's documents per request


class NoModel:
    """An Embedder handle that must not be used: the rebuild reads kept vectors."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the rebuild called the Embedder ({name})")


def unit_vectors(count: int, dimension: int) -> Vectors:
    vectors = np.random.default_rng(0).normal(size=(count, dimension)).astype(np.float32)
    return cast(Vectors, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def baseline(folder: Path, vectors: Vectors, texts: list[str]) -> float:
    """Seconds for chromadb alone to take the records (documents, vectors, one metadata key)."""
    client = chromadb.PersistentClient(path=str(folder), settings=ChromaSettings(anonymized_telemetry=False))
    records = client.create_collection("baseline", configuration={"hnsw": HNSW_CONFIGURATION}, embedding_function=None)

    def write() -> None:
        for start in range(0, len(texts), BATCH):
            rows = slice(start, start + BATCH)
            records.upsert(
                ids=[f"doc-{n}" for n in range(start, start + len(texts[rows]))],
                embeddings=vectors[rows],
                documents=texts[rows],
                metadatas=[{"n": n % 100} for n in range(start, start + len(texts[rows]))],
            )

    return timed(write)


def rebuild(settings: Any) -> tuple[float, dict[str, Any]]:
    store_class = cast(Deployment, ChromaStore).func_or_class
    assert callable(store_class)

    async def run() -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        replica = store_class(settings, NoModel())
        await replica._rebuild
        seconds = time.perf_counter() - started
        replica.store.close()
        return seconds, dict(replica.index)

    return asyncio.run(run())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parser.add_argument("--documents", type=int, default=20_000)
    args = parser.parse_args(argv)
    count = args.documents
    workdir = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    try:
        settings = load_settings(_env_file=None, persist_dir=workdir / "data", plan="enterprise")
        vectors = unit_vectors(count, settings.dimension)
        texts = [f"record {n} about subject {n % 977} and topic {n % 31}" for n in range(count)]
        base_s = baseline(workdir / "baseline", vectors, texts)
        print(f"chromadb alone: {count / base_s:,.0f} records/s", flush=True)

        store = TenantStore(settings)

        def write() -> None:
            for start in range(0, count, BATCH):
                rows = slice(start, start + BATCH)
                ids = [f"doc-{n}" for n in range(start, start + len(texts[rows]))]
                store.upsert(
                    ids, texts[rows], vectors[rows], [{"n": n % 100} for n in range(len(ids))], [True] * len(ids)
                )

        write_s = timed(write)
        store.close()
        kept_bytes = (settings.data_dir / KEPT_FILE).stat().st_size
        print(f"tenant store: {count / write_s:,.0f} records/s, kept copy {kept_bytes / count:,.0f} bytes/record")

        (index,) = [path.parent for path in settings.data_dir.glob("*/header.bin")]
        header = read_header(index)
        os.truncate(index / "data_level0.bin", header.count * header.bytes_per_element // 2)
        rebuild_s, state = rebuild(settings)
        assert state["state"] == "ready" and state["re_embedded"] == 0, state
        print(f"rebuild of a broken index: {count / rebuild_s:,.0f} records/s ({state})", flush=True)

        for path in settings.data_dir.glob(f"{KEPT_FILE}*"):
            path.unlink()
        (settings.data_dir / data_format.FILE).unlink()
        upgrade_s, state = rebuild(settings)
        assert (settings.data_dir / data_format.FILE).read_text() == f"{data_format.CURRENT}\n", state
        print(f"upgrade from format 1 (copying every vector): {count / upgrade_s:,.0f} records/s")

        print(
            f"\n{count:,} records of {settings.dimension} dimensions, their own vectors, {BATCH:,} a write; "
            "same-run baseline: chromadb alone\n\n"
            "| what | records/s | vs chromadb alone |\n|---|---|---|\n"
            f"| chromadb alone (upsert) | {count / base_s:,.0f} | 1.00x |\n"
            f"| tenant store write (kept copy, keyword index) | {count / write_s:,.0f} | {base_s / write_s:.2f}x |\n"
            f"| rebuild of a broken index (no model run) | {count / rebuild_s:,.0f} | {base_s / rebuild_s:.2f}x |\n"
            f"| upgrade from format 1 (copy made) | {count / upgrade_s:,.0f} | {base_s / upgrade_s:.2f}x |\n"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
