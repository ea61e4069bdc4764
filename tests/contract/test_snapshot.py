"""POST /snapshot/ and deployments.storage.snapshot.restore on real chromadb folders."""

import json

import pytest

from deployments.core.errors import ConfigError
from deployments.storage import snapshot as snapshot_module
from deployments.storage.index_check import REBUILD_MARKER
from deployments.storage.snapshot import MANIFEST, restore
from deployments.storage.tenant_store import TenantStore

DOCUMENTS = [{"id": f"s{n}", "text": f"snapshot note {n}", "metadata": {"n": n}} for n in range(5)]


@pytest.fixture
def snapshot(client):
    assert client.post("/embed/", json={"documents": DOCUMENTS}).status_code == 200
    response = client.post("/snapshot/")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_snapshot_is_a_complete_folder_with_its_manifest(snapshot, tmp_path):
    folder = tmp_path / "data" / "snapshots" / snapshot["path"].rsplit("/", 1)[-1]
    assert folder.is_dir() and (folder / "chroma.sqlite3").is_file()
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["count"] == 5 and manifest["tenant_id"] == "default" and manifest["dimension"] == 384
    assert not list(folder.parent.glob("*.partial"))


def test_restore_into_a_fresh_folder_brings_every_document_back(snapshot, make_settings, tmp_path):
    fresh = make_settings(persist_dir=tmp_path / "fresh")
    target = restore(tmp_path / "data" / "snapshots" / snapshot["path"].rsplit("/", 1)[-1], fresh)
    assert (target / REBUILD_MARKER).exists()  # the first start checks every vector
    store = TenantStore(fresh)
    assert store.count() == 5 and len(store.keywords.ids()) == 5  # the keyword index is rebuilt from the texts
    documents = store.get([str(d["id"]) for d in DOCUMENTS], ["text", "metadata"])
    assert [(d["text"], d["metadata"]) for d in documents] == [(d["text"], d["metadata"]) for d in DOCUMENTS]


def test_restore_refuses_existing_data_another_tenant_and_a_non_snapshot(snapshot, make_settings, tmp_path):
    folder = tmp_path / "data" / "snapshots" / snapshot["path"].rsplit("/", 1)[-1]
    with pytest.raises(ConfigError, match="already holds data"):
        restore(folder, make_settings())  # the live folder itself
    with pytest.raises(ConfigError, match="tenant"):
        restore(folder, make_settings(persist_dir=tmp_path / "other", tenant_id="someone-else"))
    with pytest.raises(ConfigError, match="not a snapshot"):
        restore(tmp_path, make_settings(persist_dir=tmp_path / "x"))


def test_only_the_newest_snapshots_are_kept(make_client, tmp_path):
    client = make_client(snapshots_kept=2)
    assert client.post("/embed/", json={"documents": DOCUMENTS}).status_code == 200
    taken = [client.post("/snapshot/").json()["path"].rsplit("/", 1)[-1] for _ in range(3)]
    folder = tmp_path / "data" / "snapshots"
    (folder / "default-20260101T000000Z-0c0c0c.partial").mkdir()  # a crash's leftover
    (folder / "default-eu-20260101T000000Z-0a0a0a").mkdir()  # another tenant's ("default-eu")
    taken.append(client.post("/snapshot/").json()["path"].rsplit("/", 1)[-1])
    kept = sorted(path.name for path in folder.iterdir())
    assert kept == sorted([*taken[-2:], "default-eu-20260101T000000Z-0a0a0a"])


def test_a_snapshot_that_would_leave_the_volume_short_is_a_507_and_writes_nothing(client, tmp_path, monkeypatch):
    assert client.post("/embed/", json={"documents": DOCUMENTS}).status_code == 200
    monkeypatch.setattr(snapshot_module, "HEADROOM_SHARE", 1.0)  # as if the volume were nearly full
    response = client.post("/snapshot/")
    assert response.status_code == 507 and response.json()["error"] == "insufficient_storage", response.text
    assert "SNAPSHOTS_KEPT" in response.json()["message"]
    folder = tmp_path / "data" / "snapshots"
    assert not folder.exists() or not any(folder.iterdir())
    assert client.post("/embed/", json={"documents": [{"text": "writes still work"}]}).status_code == 200
