"""Scaling embedding beyond one machine: a Ray cluster of two nodes (both on this machine, started
with ray.cluster_utils.Cluster) runs the shipped serve_config.cluster.yaml with `serve run
--address`. The head node holds the tenant's data folder (`chromadb_folder`), the worker node
offers `embedder`: every Embedder replica lands on the worker, the store stays on the head, and
the API works across the two."""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
import yaml
from ray.cluster_utils import Cluster

from bench.instance import REPO, START_TIMEOUT_S, kill_session
from bench.ports import free_port, side_ports

pytestmark = pytest.mark.e2e


def raylet_pid(node: object) -> int:
    return int(node.all_processes["raylet"][0].process.pid)  # type: ignore[attr-defined]


def replicas_under(raylet: int, deployment: str) -> int:
    """Replica processes of `deployment` that the given node's raylet started (its children)."""
    title = f"ServeReplica:chromedb:{deployment}"
    count = 0
    for child in psutil.Process(raylet).children():
        with contextlib.suppress(psutil.Error):  # one that exits meanwhile is not a replica
            count += title in " ".join(child.cmdline())
    return count


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"chromadb_folder": 1}})
    cluster.add_node(num_cpus=1, resources={"embedder": 2})
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_embedder_replicas_run_on_the_embedding_node_and_the_store_on_the_head(cluster, tmp_path):
    port = free_port()
    config = yaml.safe_load((REPO / "serve_config.cluster.yaml").read_text())
    config["http_options"]["port"] = port
    config_path = tmp_path / "serve_config.cluster.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, **side_ports(), "TENANT_ID": "cluster", "PERSIST_DIR": str(tmp_path / "data")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "ray.serve.scripts", "run", str(config_path), "--address", cluster.address],
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("not healthy:\n" + (tmp_path / "serve.log").read_text()[-3000:])

        stored = httpx.post(f"{url}/embed/", json={"documents": [{"id": "c", "text": "a cat on a mat"}]}, timeout=60)
        assert stored.status_code == 200, stored.text
        hits = httpx.post(f"{url}/search/", json={"query": "a kitten on a rug"}, timeout=60).json()["results"]
        assert hits[0]["id"] == "c"

        head, worker = raylet_pid(cluster.head_node), raylet_pid(cluster.list_all_nodes()[1])
        assert replicas_under(worker, "Embedder") >= 1 and replicas_under(head, "Embedder") == 0
        assert replicas_under(head, "ChromaStore") == 1 and replicas_under(worker, "ChromaStore") == 0
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_session(serve.pid)
