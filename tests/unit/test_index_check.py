"""The HNSW index check and the rebuild of a broken index, on real chromadb folders (hashing
embedder). The corruptions are the ones a SIGKILL left here: a header counting elements that were
never written, link lists cut short, a terabyte-sized sparse tail, links to elements below the
level they are linked on."""

import asyncio
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from ray.serve import Deployment

from deployments.core.config import Settings
from deployments.core.types import Chunks
from deployments.embedding.tokens import chunk_texts
from deployments.storage.chroma import IndexRebuilding
from deployments.storage.index_check import (
    HEADER,
    QUARANTINE_DIR,
    REBUILD_MARKER,
    BrokenIndex,
    Header,
    check_index,
    index_folders,
    quarantine_broken_indexes,
)
from deployments.storage.kept_vectors import FILE as KEPT_FILE
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import TenantStore
from deployments.store import ChromaStore
from tests.fakes import FakeEmbedder, LocalHandle

EMBEDDER = FakeEmbedder()
# chromadb writes its HNSW files every 1,000 writes (sync_threshold); the rest wait in its log.
# 1,100 documents put about 30 elements on the upper levels (1 in 32 reaches one).
DOCS = 1100


def texts(count: int) -> list[str]:
    return [f"note {n}: {' '.join(f'w{(n * 7 + k) % 997}' for k in range(12))}" for n in range(count)]


def expected_vectors(count: int) -> np.ndarray:
    """What each document's vector is: the model's of its text, except every 10th, whose vector the
    tenant supplied (a rebuild cannot re-make those from the text)."""
    vectors = EMBEDDER.backend.encode(texts(count))
    supplied = np.random.default_rng(7).normal(size=(len(vectors[::10]), vectors.shape[1])).astype(np.float32)
    vectors[::10] = supplied / np.linalg.norm(supplied, axis=1, keepdims=True)
    return vectors


def fill(settings: Settings, count: int = DOCS) -> list[str]:
    """A closed store holding `count` documents; returns their ids."""
    store = TenantStore(settings)
    ids = [f"doc-{n}" for n in range(count)]
    vectors, all_texts = expected_vectors(count), texts(count)
    for start in range(0, count, 100):
        rows = range(start, min(start + 100, count))
        store.upsert(
            [ids[n] for n in rows],
            [all_texts[n] for n in rows],
            vectors[start : start + 100],
            [{"n": start}] * len(rows),
            [n % 10 == 0 for n in rows],
        )
    store.close()
    return ids


@pytest.fixture
def index(settings: Settings) -> Path:
    fill(settings)
    (folder,) = index_folders(settings.data_dir)
    return folder


def header_of(folder: Path) -> Header:
    return Header(*HEADER.unpack_from((folder / "header.bin").read_bytes()))


def rewrite_header(folder: Path, **changes: Any) -> None:
    fields = header_of(folder).__dict__ | changes
    (folder / "header.bin").write_bytes(HEADER.pack(*fields.values()))


def upper_records(folder: Path) -> dict[int, int]:
    """element -> byte offset of its upper-level lists in link_lists.bin (elements above level 0)."""
    data, position, found = (folder / "link_lists.bin").read_bytes(), 0, {}
    for element in range(header_of(folder).count):
        (size,) = struct.unpack_from("<I", data, position)
        position += 4
        if size:
            found[element] = position
        position += size
    return found


def poke_uint32(path: Path, offset: int, value: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(struct.pack("<I", value))


def header_ahead_of_records(folder: Path) -> None:  # the crash: the header is written first
    rewrite_header(folder, count=header_of(folder).count + 40, max_elements=header_of(folder).max_elements + 40)
    with (folder / "data_level0.bin").open("ab") as file:  # the records' space exists, never written
        file.truncate(header_of(folder).count * header_of(folder).bytes_per_element)
    with (folder / "length.bin").open("ab") as file:
        file.truncate(header_of(folder).count * 4)


def link_lists_cut_short(folder: Path) -> None:
    os.truncate(folder / "link_lists.bin", (folder / "link_lists.bin").stat().st_size // 2)


def sparse_terabyte_tail(folder: Path) -> None:
    os.truncate(folder / "link_lists.bin", (folder / "link_lists.bin").stat().st_size + 2**40)


def level0_neighbour_past_the_end(folder: Path) -> None:
    poke_uint32(folder / "data_level0.bin", 4, header_of(folder).count + 5)  # element 0's first neighbour


def upper_link_to_a_lower_element(folder: Path) -> None:
    records = upper_records(folder)
    level0_only = next(e for e in range(header_of(folder).count) if e not in records)
    offset = next(iter(records.values()))
    poke_uint32(folder / "link_lists.bin", offset, 1)  # one neighbour on its level 1 ...
    poke_uint32(folder / "link_lists.bin", offset + 4, level0_only)  # ... that has no level 1


def wrong_version(folder: Path) -> None:
    rewrite_header(folder, version=7)


def entry_point_past_the_end(folder: Path) -> None:
    rewrite_header(folder, entry_point=header_of(folder).count)


CORRUPTIONS: list[Callable[[Path], None]] = [
    header_ahead_of_records,
    link_lists_cut_short,
    sparse_terabyte_tail,
    level0_neighbour_past_the_end,
    upper_link_to_a_lower_element,
    wrong_version,
    entry_point_past_the_end,
]


def test_a_healthy_index_passes(index):
    assert len(upper_records(index)) > 3, "the fixture should reach the upper levels"
    check_index(index)


def test_an_empty_store_passes(settings):
    """chromadb writes no index files for an empty collection: reopening it quarantines nothing
    and asks for no rebuild."""
    TenantStore(settings).close()
    reopened = TenantStore(settings)
    assert reopened.quarantined == [] and not reopened.rebuild.pending
    reopened.close()


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__ for c in CORRUPTIONS])
def test_each_corruption_is_found(index, corrupt):
    corrupt(index)
    with pytest.raises(BrokenIndex):
        check_index(index)


def test_only_a_broken_index_is_quarantined(settings, index):
    assert quarantine_broken_indexes(settings.data_dir) == []
    assert not (settings.data_dir / REBUILD_MARKER).exists()
    link_lists_cut_short(index)
    (problem,) = quarantine_broken_indexes(settings.data_dir)
    assert problem.startswith(index.name) and "link_lists.bin" in problem
    assert not index.exists()
    (moved,) = (settings.data_dir / QUARANTINE_DIR).iterdir()
    assert moved.name.startswith(index.name) and (moved / "link_lists.bin").exists()
    assert (settings.data_dir / REBUILD_MARKER).exists()


def store_replica(settings: Settings, embedder: FakeEmbedder = EMBEDDER) -> Any:
    store_class = cast(Deployment, ChromaStore).func_or_class  # the plain class, outside Ray
    assert callable(store_class)
    return store_class(settings, LocalHandle(embedder))


def rebuilt(settings: Settings, ids: list[str], embedder: FakeEmbedder) -> dict[str, Any]:
    """Open the store on its broken index, check it serves at once and says `rebuilding`, wait for
    the rebuild; returns the index state it ends in."""

    async def scenario() -> dict[str, Any]:
        replica = store_replica(settings, embedder)
        assert replica.store.quarantined and replica.index == {"state": "rebuilding"}
        assert await replica.count() == len(ids)
        with pytest.raises(IndexRebuilding):  # some vectors are gone until the rebuild restores them
            replica.store.get(ids, ["embedding"])
        await replica._rebuild
        replica.store.close()
        return dict(replica.index)

    return asyncio.run(scenario())


def assert_every_vector_is_back(settings: Settings, ids: list[str], expected: np.ndarray) -> None:
    store = TenantStore(settings)
    assert not store.quarantined and not store.rebuild.pending
    documents = store.get(ids, ["text", "embedding"])
    stored = np.array([d["embedding"] for d in documents], dtype=np.float32)
    assert np.allclose(stored, expected, atol=1e-5)
    for n in range(0, len(ids), 37):
        (hits,) = store.search.many([Query(expected[n], 1)])
        assert not isinstance(hits, Exception) and hits[0]["id"] == f"doc-{n}"
    assert store.get(["doc-3"], ["metadata"])[0]["metadata"] == {"n": 0}
    assert store.get(["doc-10"], ["metadata"])[0]["metadata"] == {"n": 0}  # the supplied vector's mark is not shown
    store.close()


@pytest.mark.parametrize("corrupt", [header_ahead_of_records, link_lists_cut_short])
def test_a_broken_index_is_moved_aside_and_rebuilt_from_the_kept_vectors(settings, corrupt):
    """Opened on a broken index, the store does not crash: it moves the index aside, serves texts
    and counts at once, says `rebuilding`, restores every lost vector (the model's, or the one the
    tenant supplied) from its kept copy in the background, without running the model, and ends with
    every vector back, searchable, and the rebuild marker gone."""
    ids = fill(settings)
    corrupt(index_folders(settings.data_dir)[0])
    embedder = FakeEmbedder()
    index = rebuilt(settings, ids, embedder)
    assert index == {"state": "ready", "rebuilt": pytest.approx(DOCS, abs=DOCS // 2), "re_embedded": 0}
    assert index["rebuilt"] > 0 and embedder.encoded == []
    assert_every_vector_is_back(settings, ids, expected_vectors(DOCS))


def test_a_record_without_a_kept_vector_is_re_embedded_from_its_text(settings):
    """A lost copy (here: vectors.sqlite3 removed with the index) costs a model run, not the
    vector: the model is deterministic, so each text gets the vector it had. (A vector the tenant
    supplied cannot be re-made: it gets the model's, and the log says so.)"""
    ids = fill(settings)
    link_lists_cut_short(index_folders(settings.data_dir)[0])
    for path in settings.data_dir.glob(f"{KEPT_FILE}*"):
        path.unlink()
    embedder = FakeEmbedder()
    index = rebuilt(settings, ids, embedder)
    assert index["state"] == "ready" and index["re_embedded"] == index["rebuilt"] > 0
    assert len(embedder.encoded) == index["re_embedded"]
    expected = expected_vectors(DOCS)
    model_made = EMBEDDER.backend.encode(texts(DOCS))
    store = TenantStore(settings)
    stored = np.array([d["embedding"] for d in store.get(ids, ["embedding"])], dtype=np.float32)
    store.close()
    own = np.arange(DOCS) % 10 == 0
    assert np.allclose(stored[~own], expected[~own], atol=1e-5)
    restored_own = ~np.isclose(stored[own], expected[own], atol=1e-5).all(axis=1)
    assert np.allclose(stored[own][restored_own], model_made[own][restored_own], atol=1e-5)


def test_a_rebuild_interrupted_by_a_restart_resumes(settings):
    """The marker outlives the process: a store opened with it (index intact, say the crash came
    after the move) checks every document again and re-embeds only what lacks a vector."""
    fill(settings, 50)
    (settings.data_dir / REBUILD_MARKER).write_text("left by a crash\n")

    async def scenario() -> None:
        replica = store_replica(settings)
        assert replica.index == {"state": "rebuilding"}
        await replica._rebuild
        assert replica.index == {"state": "ready", "rebuilt": 0, "re_embedded": 0}
        replica.store.close()

    asyncio.run(scenario())
    assert not (settings.data_dir / REBUILD_MARKER).exists()


def test_restoring_a_vector_never_overwrites_a_newer_write(settings):
    """A document replaced or deleted while its old text was being re-embedded keeps its new state."""
    store = TenantStore(settings)
    now = ["the text as it is now", "kept as it was", "about to go"]
    store.upsert(["a", "b", "c"], now, EMBEDDER.backend.encode(now), [{}, {"k": 1}, {}])
    store.delete(["c"])
    stale = ["the text as it was", "kept as it was", "about to go"]
    assert store.rebuild.restore_vectors(["a", "b", "c"], stale, EMBEDDER.backend.encode(stale), "documents") == 1
    (a, b) = store.get(["a", "b"], ["text", "metadata", "embedding"])
    assert (
        a["text"] == now[0]
        and a["embedding"] is not None
        and np.allclose(a["embedding"], EMBEDDER.backend.encode([now[0]])[0], atol=1e-6)
    )
    assert b["metadata"] == {"k": 1} and store.count() == 2


def test_the_chunks_of_long_documents_are_rebuilt_too(settings):
    """A broken chunk index (the second collection) is rebuilt like the documents' one: afterwards a
    search by words only the tail of each document holds finds it, at its last chunk."""
    store = TenantStore(settings)
    docs = [" ".join(f"d{d}w{n}" for n in range(60)) for d in range(160)]
    spans = chunk_texts(EMBEDDER.backend, docs, 10, 2)  # 8 chunks each: 1,120 chunk records, past one flush
    chunks = [
        Chunks(cut, EMBEDDER.backend.encode([doc[a:b] for a, b in cut])) for doc, cut in zip(docs, spans, strict=True)
    ]
    for first in range(0, 160, 40):
        rows = range(first, first + 40)
        store.upsert(
            [f"long-{d}" for d in rows],
            [docs[d] for d in rows],
            np.stack([chunks[d].vectors[0] for d in rows]),
            [{} for _ in rows],
            None,
            [chunks[d] for d in rows],
        )
    store.close()
    for folder in index_folders(settings.data_dir):
        link_lists_cut_short(folder)

    async def scenario() -> None:
        replica = store_replica(settings)
        await replica._rebuild
        assert replica.index["state"] == "ready" and replica.index["rebuilt"] > 0
        assert replica.index["re_embedded"] == 0  # the chunks' vectors are kept too
        replica.store.close()

    asyncio.run(scenario())
    reopened = TenantStore(settings)
    for d in (0, 57, 159):
        tail = docs[d][spans[d][-1][0] :]
        (hits,) = reopened.search.many([Query(EMBEDDER.backend.encode([tail])[0], 1)])
        assert not isinstance(hits, Exception) and hits[0]["id"] == f"long-{d}"
        assert hits[0]["span"] == list(spans[d][-1])


def test_the_health_probe_gets_the_rebuild_progress_while_a_count_waits_behind_a_write(settings, monkeypatch):
    """chromadb's count waits behind a running write (a rebuild's takes a second or more on a busy
    machine): the store's answer to a probe still says the index state, with the count unknown."""
    fill(settings, 50)
    (settings.data_dir / REBUILD_MARKER).write_text("left by a crash\n")

    async def scenario() -> dict[str, Any]:
        replica = store_replica(settings)
        await replica._rebuild
        replica.index = {"state": "rebuilding", "checked": 1000, "total": 5000}  # as mid-rebuild
        real_count = replica.store.count

        def count_behind_a_write() -> int:
            time.sleep(3)
            return real_count()

        monkeypatch.setattr(replica.store, "count", count_behind_a_write)
        started = time.monotonic()
        info = dict(await replica.info())
        assert info.pop("volume")["writes"] == "accepted"
        assert time.monotonic() - started < 2  # inside the Ingress's probe timeout
        replica._readers.shutdown(wait=True)
        replica.store.close()
        return info

    assert asyncio.run(scenario()) == {"count": None, "index": {"state": "rebuilding", "checked": 1000, "total": 5000}}
