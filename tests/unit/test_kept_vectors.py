"""The kept copy of every vector (deployments.storage.kept_vectors) through the tenant store's writes,
on real chromadb and SQLite files: a lookup by a record's own state finds exactly the vector chromadb
holds for it, whatever step of a write failed; superseded and deleted states are dropped."""

import sqlite3
from typing import Any

import numpy as np
import pytest

from deployments.core.errors import InternalFailure, StorageUnavailable
from deployments.core.types import Chunks
from deployments.embedding.backends import HashingBackend
from deployments.storage.kept_vectors import FILE, state_key
from deployments.storage.tenant_store import TenantStore

BACKEND = HashingBackend()


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=(1, 384)).astype(np.float32)
    return vector / np.linalg.norm(vector)


def kept_for(store: TenantStore, ids: list[str], collection: str = "documents") -> list[np.ndarray | None]:
    """What a rebuild would restore for each id: the copy kept for the state chromadb holds now."""
    records = store.rebuild.collections[collection]
    found = records.get(ids=ids, include=["documents", "metadatas"])
    assert found["ids"] == ids
    texts, metadatas = found["documents"] or [], found["metadatas"] or []
    keys = [state_key(text, metadata) for text, metadata in zip(texts, metadatas, strict=True)]
    return store.vectors.find(ids, keys)


def rows(store: TenantStore) -> list[tuple[str, str]]:
    with sqlite3.connect(store._settings.data_dir / FILE) as db:
        return sorted(db.execute("SELECT owner, id FROM vectors"))


def test_every_write_keeps_the_vector_chromadb_holds(settings):
    """The model's vector and the tenant's own are both kept, under the record's own state; a
    rewrite drops the old state's copy and a delete drops the record's."""
    store = TenantStore(settings)
    model = BACKEND.encode(["about apples"])
    store.upsert(["a"], ["about apples"], model, [{}])
    store.upsert(["b"], ["about pears"], unit(1), [{}], [True])
    (a, b) = kept_for(store, ["a", "b"])
    assert a is not None and np.array_equal(a, model[0])
    assert b is not None and np.array_equal(b, unit(1)[0])
    store.upsert(["b"], ["about pears"], unit(2), [{}], [True])  # same text, another vector of the tenant's
    (b,) = kept_for(store, ["b"])
    assert b is not None and np.array_equal(b, unit(2)[0])
    assert rows(store) == [("a", "a"), ("b", "b")]
    store.delete(["a"])
    assert rows(store) == [("b", "b")]


def test_a_failed_write_leaves_the_copy_of_what_chromadb_still_holds(settings, monkeypatch):
    """chromadb refuses the write after the new copy was kept: the record keeps its old state, and
    its old state's copy is still found (the new one is never looked up)."""
    store = TenantStore(settings)
    store.upsert(["a"], ["the old text"], unit(1), [{}], [True])

    def refuse(**_: Any) -> None:
        raise RuntimeError("chromadb failed")

    monkeypatch.setattr(store._collection, "upsert", refuse)
    with pytest.raises(InternalFailure):
        store.upsert(["a"], ["the new text"], unit(2), [{}], [True])
    monkeypatch.undo()
    assert store.get(["a"], ["text"])[0]["text"] == "the old text"
    (a,) = kept_for(store, ["a"])
    assert a is not None and np.array_equal(a, unit(1)[0])


def test_a_copy_the_disk_refuses_stores_nothing_anywhere(settings, monkeypatch):
    """The copy is written first: a disk that refuses it is a 507 before chromadb is asked."""
    store = TenantStore(settings)
    real = store.vectors._db
    fake = type("Full", (), {"execute": real.execute, "executemany": None})()

    def full(*_: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    fake.executemany = full
    monkeypatch.setattr(store.vectors, "_db", fake)
    with pytest.raises(StorageUnavailable, match="nothing was stored"):
        store.upsert(["a"], ["text"], unit(1), [{}])
    monkeypatch.undo()
    assert store.count() == 0 and store.get(["a"], ["text"]) == []


def test_a_chunked_document_keeps_its_chunks_vectors_and_drops_them_with_it(settings):
    store = TenantStore(settings)
    text = "first part. second part. third part."
    spans = [(0, 11), (12, 24), (25, 36)]
    vectors = BACKEND.encode([text[a:b] for a, b in spans])
    store.upsert(["doc"], [text], vectors[:1], [{}], None, [Chunks(spans, vectors)])
    chunk_ids = store.chunks.collection.get(include=[])["ids"]
    assert len(chunk_ids) == 2
    for kept, expected in zip(kept_for(store, chunk_ids, "chunks"), vectors[1:], strict=True):
        assert kept is not None and np.array_equal(kept, expected)
    assert [owner for owner, _ in rows(store)] == ["doc", "doc", "doc"]
    store.upsert(["doc"], ["short now"], BACKEND.encode(["short now"]), [{}])  # no longer chunked
    assert rows(store) == [("doc", "doc")]
    store.delete(["doc"])
    assert rows(store) == []
