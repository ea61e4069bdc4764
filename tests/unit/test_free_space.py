"""A nearly full volume refuses writes before they start (storage.free_space), with real chromadb on
disk: the store is left exactly as it was. The end-to-end version, on a real small volume filled
from outside a running service, is tests/e2e/test_full_volume.py."""

import shutil
from collections import namedtuple

import numpy as np
import pytest

from deployments.core.errors import StorageUnavailable
from deployments.core.types import Chunks
from deployments.storage.free_space import MIB, WRITE_AMPLIFICATION, refuse_without_room, write_size
from deployments.storage.tenant_store import TenantStore
from tests.unit.test_tenant_store import BACKEND, add, search

DiskUsage = namedtuple("DiskUsage", "total used free")


def test_every_kind_of_write_is_refused_while_the_volume_is_short_and_nothing_changes(make_settings, tmp_path):
    store = TenantStore(make_settings())
    add(store, {"a": ("red apples", {"kind": "fruit"}), "b": ("blue whales", {})})
    store.close()
    # More free space asked than the whole volume has: short of room however busy the disk is.
    beyond = shutil.disk_usage(tmp_path).total // MIB + 1
    store = TenantStore(make_settings(min_free_disk_mb=beyond))
    writes = {
        "embed (asked before the model runs)": lambda: store.stored_vectors(["c"], ["green pears"]),
        "upsert": lambda: add(store, {"c": ("green pears", {}), "a": ("red cars", {})}),
        "update": lambda: store.update_metadata(["a"], [{"kind": "car"}]),
        "delete": lambda: store.delete(["a"]),
        "delete by filter": lambda: store.delete_where({"kind": "fruit"}, None, 10),
    }
    for name, write in writes.items():
        with pytest.raises(StorageUnavailable) as refused:
            write()
        assert refused.value.status_code == 507, name
        assert "nothing was stored" in refused.value.message and f"MIN_FREE_DISK_MB={beyond}" in refused.value.message
    assert store.count() == 2 and sorted(store.keywords.ids()) == ["a", "b"]
    assert [(doc["id"], doc["text"], doc["metadata"]) for doc in store.get(["a", "b", "c"], ["text", "metadata"])] == [
        ("a", "red apples", {"kind": "fruit"}),
        ("b", "blue whales", {}),
    ]
    assert [hit["id"] for hit in search(store, "apples", top_k=1)] == ["a"]  # reads go on


def test_a_write_needs_room_for_about_ten_times_its_size_beyond_the_margin(monkeypatch, tmp_path):
    vectors = BACKEND.encode(["a"] * 100)
    texts = ["x" * 1_000] * 100
    size = write_size([{}] * 100, texts, vectors)
    assert size == vectors.nbytes + 100 * 1_000 + len("[" + ", ".join(["{}"] * 100) + "]")
    free = 64 * MIB + WRITE_AMPLIFICATION * size
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(10 * free, 9 * free, free))
    refuse_without_room(tmp_path, 64 * MIB, size)  # just enough room
    with pytest.raises(StorageUnavailable, match="MIN_FREE_DISK_MB=64"):
        refuse_without_room(tmp_path, 64 * MIB, size + 1)
    with pytest.raises(StorageUnavailable):
        refuse_without_room(tmp_path, free + 1)  # a delete carries nothing, and still needs the margin


def test_a_chunked_document_counts_its_text_and_vectors_twice():
    whole = np.zeros((1, 384), dtype=np.float32)
    cut = Chunks(spans=[(0, 5), (3, 10)], vectors=np.zeros((2, 384), dtype=np.float32))
    assert write_size([{}], ["0123456789"], whole, [cut]) == write_size([{}], ["0123456789"], whole) + 10 + 2 * 384 * 4
