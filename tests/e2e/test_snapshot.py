"""A snapshot taken while the service runs (POST /snapshot/), restored with
`python -m deployments.storage.snapshot restore` into a fresh instance on another folder: the same
documents, texts, metadata, vectors, and search in every mode."""

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from bench.instance import REPO, ServeInstance
from tests.e2e.conftest import E2E_API_KEY, E2E_QUOTA, E2E_TENANT

pytestmark = pytest.mark.e2e

DOCUMENTS: list[dict[str, Any]] = [
    {"id": "snap-a", "text": "Glaciers carve deep valleys over thousands of years.", "metadata": {"k": 1}},
    {"id": "snap-b", "text": "The bakery sells sourdough bread every morning.", "metadata": {"k": 2}},
    {"id": "snap-c", "text": "Comets are made of ice, dust and rocky material."},
]
GET_ALL = {"ids": [d["id"] for d in DOCUMENTS], "include": ["text", "metadata", "embedding"]}
QUERIES = [("ice sculpting mountain valleys", "semantic", "snap-a"), ("sourdough", "keyword", "snap-b")]


def top(client: httpx.Client, query: str, mode: str) -> str:
    response = client.post("/search/", json={"query": query, "mode": mode, "top_k": 1})
    assert response.status_code == 200, response.text
    return str(response.json()["results"][0]["id"])


def test_a_snapshot_restores_into_a_fresh_instance(service, api, tmp_path):
    assert api.post("/embed/", json={"documents": DOCUMENTS}).status_code == 200
    try:
        taken = api.post("/snapshot/")
        assert taken.status_code == 200, taken.text
        manifest = taken.json()
        assert manifest["count"] == len(DOCUMENTS) and manifest["tenant_id"] == E2E_TENANT
        before = api.post("/get/", json=GET_ALL)
    finally:
        api.post("/delete/", json={"ids": [d["id"] for d in DOCUMENTS]})
    assert api.post("/snapshot/").json()["count"] == 0  # the first snapshot is unaffected by the delete

    env = {
        "TENANT_ID": E2E_TENANT,
        "PLAN": "starter",
        "MAX_DOCS": str(E2E_QUOTA),
        "PERSIST_DIR": str(tmp_path / "restored"),
        "API_KEY": E2E_API_KEY,
    }
    restore = [sys.executable, "-m", "deployments.snapshot", "restore", manifest["path"]]
    done = subprocess.run(restore, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    again = subprocess.run(restore, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    assert again.returncode == 2 and "already holds data" in again.stderr  # never over existing data

    restored = ServeInstance(tmp_path, env)
    restored.start()
    try:
        headers = {"Authorization": f"Bearer {E2E_API_KEY}"}
        with httpx.Client(base_url=restored.url, headers=headers, timeout=60) as client:
            for _ in range(120):  # the first start checks every vector (the restore asks it to)
                health = client.get("/healthz/").json()
                if health["deployments"]["ChromaStore"]["detail"]["index"]["state"] == "ready":
                    break
                time.sleep(0.5)
            assert health["count"] == len(DOCUMENTS)
            after = client.post("/get/", json=GET_ALL)
            assert after.json() == before.json()
            for query, mode, expected in QUERIES:
                assert top(client, query, mode) == expected
    finally:
        restored.stop()
