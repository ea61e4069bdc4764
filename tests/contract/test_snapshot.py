"""POST /snapshot/ and deployments.storage.snapshot.restore on real chromadb folders."""

import json

import pytest

from deployments.core.errors import ConfigError
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
    assert store.count() == 5 and store.keywords.count() == 5  # the keyword index is rebuilt from the texts
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
