"""A nearly full data volume, for real: a service whose PERSIST_DIR is a small tmpfs of its own
(mounted in a private mount namespace with `unshare`, so nothing outside sees it and it goes with
the service), filled from outside while it runs through /proc/<launcher>/root.

On such a volume chromadb fails a write halfway (logged, not applied: a 500 whose write a restart
then replays), so the store refuses writes before they start (storage.free_space): every refusal
is a 507 that stored nothing, which a replaced store replica, reading the folder afresh, confirms.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.instance import ServeInstance, session_processes
from deployments.storage.free_space import MIB

pytestmark = pytest.mark.e2e

API_KEY = "full-volume-api-key-0123456789abcdef"
VOLUME_MIB = 48
MARGIN_MIB = 8  # MIN_FREE_DISK_MB
REPLACED_TIMEOUT_S = 120.0
STORE = "ServeReplica:chromedb:ChromaStore"
BEFORE = {f"d{n}": f"document {n} about zebras and the savanna" for n in range(20)}
# 50 long documents: about 10x their size (WRITE_AMPLIFICATION) is more than the room left above the
# margin below, while a short one fits. With 1 MiB free and no margin, chromadb failed this write
# halfway (measured 2026-12-05).
LONG = [{"id": f"long{n}", "text": f"quokka {n} " + "lorem ipsum dolor " * 500} for n in range(50)]


def private_volume(mount_point: Path) -> tuple[str, ...]:
    """A command prefix that runs its command with a tmpfs of VOLUME_MIB at `mount_point`, seen by
    it and its children only. Root needs a mount namespace; anyone else a user namespace too."""
    script = f'mount -t tmpfs -o size={VOLUME_MIB}m tmpfs "$0" && exec "$@"'
    user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    return ("unshare", "--mount", "--propagation", "private", *user, "sh", "-c", script, str(mount_point))


@pytest.fixture(scope="module")
def volume_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    workdir = tmp_path_factory.mktemp("full-volume")
    data = workdir / "data"
    data.mkdir()
    wrapper = private_volume(data)
    if shutil.which("unshare") is None:
        pytest.skip("util-linux's unshare is not installed: no private volume can be mounted")
    probe = subprocess.run([*wrapper, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no tmpfs can be mounted in a private namespace here (root or user namespaces): {probe.stderr}")
    env = {"TENANT_ID": "full-volume", "PERSIST_DIR": str(data), "API_KEY": API_KEY}
    env["MIN_FREE_DISK_MB"] = str(MARGIN_MIB)
    instance = ServeInstance(workdir, env, wrapper=wrapper)
    instance.start()
    yield instance
    instance.stop()


def volume(instance: ServeInstance) -> Path:
    """The service's data volume as seen from here: through its launcher's root, in its mount namespace."""
    assert instance.process is not None
    return Path(f"/proc/{instance.process.pid}/root") / Path(instance.env["PERSIST_DIR"]).relative_to("/")


def leave_free(folder: Path, free_bytes: int) -> Path:
    """Fill the volume holding `folder` with one file until it is full, then give back all but
    `free_bytes` of it; returns the file."""
    filler = folder / "filler"
    with filler.open("ab") as out:
        try:
            while True:
                out.write(b"\0" * MIB)
                out.flush()
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - (free_bytes - shutil.disk_usage(folder).free)))
    return filler


def replace_store_replica(instance: ServeInstance, api: httpx.Client) -> None:
    """kill -9 of the ChromaStore replica; returns once Serve's new one answers."""
    assert instance.process is not None
    old = {pid for pid, command in session_processes(instance.process.pid) if STORE in command}
    assert old
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + REPLACED_TIMEOUT_S
    while time.monotonic() < deadline:
        new = {pid for pid, command in session_processes(instance.process.pid) if STORE in command} - old
        try:
            if new and api.get("/count/", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no new ChromaStore replica answered within {REPLACED_TIMEOUT_S:g} s")


def keyword_ids(api: httpx.Client, query: str) -> list[str]:
    found = api.post("/search/", json={"query": query, "mode": "keyword", "top_k": 50})
    assert found.status_code == 200, found.text
    return [hit["id"] for hit in found.json()["results"]]


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["error"] == "insufficient_storage", body
    assert "nothing was stored" in body["message"] and f"MIN_FREE_DISK_MB={MARGIN_MIB}" in body["message"], body


def test_a_nearly_full_volume_refuses_writes_whole_and_keeps_serving_reads(volume_service):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=volume_service.url, headers=headers, timeout=120) as api:
        stored = api.post("/embed/", json={"documents": [{"id": i, "text": t} for i, t in BEFORE.items()]})
        assert stored.status_code == 200, stored.text
        folder = volume(volume_service)
        assert shutil.disk_usage(folder).total == VOLUME_MIB * MIB

        # Room above the margin for a short write, not for 50 long ones.
        filler = leave_free(folder, (MARGIN_MIB + 2) * MIB)
        short = api.post("/embed/", json={"documents": [{"id": "short", "text": "a short note on wombats"}]})
        assert short.status_code == 200, short.text
        assert_refused(api.post("/embed/", json={"documents": LONG}))

        # Below the margin: nothing is written, of any kind; reads and health go on.
        leave_free(folder, MARGIN_MIB * MIB // 2)
        assert_refused(api.post("/embed/", json={"documents": [{"id": "tiny", "text": "quokka"}]}))
        assert_refused(api.post("/delete/", json={"ids": ["d1", "d2"]}))
        assert_refused(api.post("/delete/", json={"where_document": {"$contains": "zebras"}}))
        assert_refused(api.post("/update/", json={"documents": [{"id": "d3", "metadata": {"changed": True}}]}))
        assert api.get("/count/").json()["count"] == 21
        assert sorted(keyword_ids(api, "zebras")) == sorted(BEFORE)
        semantic = api.post("/search/", json={"query": "wombats", "top_k": 1})
        assert semantic.status_code == 200 and semantic.json()["results"][0]["id"] == "short"
        health = api.get("/healthz/")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        volume_health = health.json()["deployments"]["ChromaStore"]["detail"]["volume"]
        assert volume_health["writes"] == "refused" and volume_health["min_free_mb"] == MARGIN_MIB

        # A store replica that reads the folder afresh finds exactly what was acknowledged: no refused
        # write was logged to be replayed, and the keyword index agrees.
        filler.unlink()
        replace_store_replica(volume_service, api)
        assert api.get("/count/").json()["count"] == 21
        got = api.post("/get/", json={"ids": ["d1", "d2", "d3", "long0", "tiny"], "include": ["metadata"]}).json()
        assert [doc["id"] for doc in got["documents"]] == ["d1", "d2", "d3"] and got["documents"][2]["metadata"] == {}
        assert keyword_ids(api, "quokka") == []
        assert sorted(keyword_ids(api, "zebras")) == sorted(BEFORE)

        # With the room back, writes work again.
        assert api.get("/healthz/").json()["deployments"]["ChromaStore"]["detail"]["volume"]["writes"] == "accepted"
        again = api.post("/embed/", json={"documents": LONG})
        assert again.status_code == 200, again.text
        assert sorted(keyword_ids(api, "quokka")) == sorted(doc["id"] for doc in LONG)
