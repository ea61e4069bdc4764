"""What a hostile caller or a curious neighbour can reach: nothing but the tenant's own API.

Against the shared real service (API_KEY set, TENANT_ID with a path and unicode in it)."""

import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bench.instance import ServeInstance, session_processes
from deployments.core.config import tenant_slug
from deployments.launch import CLIENT_TIMEOUT_S
from deployments.storage.snapshot import SNAPSHOTS_DIR
from tests.e2e.conftest import E2E_API_KEY, E2E_TENANT, service_logs

pytestmark = pytest.mark.e2e

# The only processes that may listen beyond loopback: Serve's data path (HAProxy with the API, its
# metrics and stats; Serve's fallback proxy; the replicas' own HTTP and gRPC servers, which Ray
# 2.60 binds to all interfaces). Names as the kernel keeps them, cut to 15 characters.
SERVE_DATA_PATH = {"haproxy", "ray::ServeRepli", "ray::ProxyActor"}


def listeners(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process name) of every TCP listener the given processes own."""
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in table.splitlines():
        fields = line.split()
        owner = fields[-1]
        if any(f"pid={pid}," in owner for pid in pids):
            found.append((fields[3], owner.split('"')[1]))
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost")


def test_rays_control_plane_listens_on_loopback_only(service: ServeInstance):
    assert service.process is not None
    processes = session_processes(service.process.pid)
    found = listeners({pid for pid, _ in processes})
    assert any(name == "gcs_server" for _, name in found), found  # the check sees Ray's ports at all
    exposed = [(address, name) for address, name in found if not is_loopback(address)]
    # GCS, raylet, the controller, agents and the driver stay on loopback; what is exposed is
    # Serve's data path, behind the same API key.
    assert {name for _, name in exposed} <= SERVE_DATA_PATH, exposed
    assert any(address.endswith(f":{service.port}") for address, _ in exposed)


@pytest.mark.parametrize(
    "doc_id",
    [
        "../../../etc/passwd",
        "..",
        "/absolute/path",
        "C:\\\\windows\\\\system32",
        "ünïcödé 🚀 id",
        "%00%2e%2e",
        "x" * 256,
    ],
)
def test_a_hostile_but_valid_id_is_just_an_id(api, service, doc_id):
    stored = api.post("/embed/", json={"documents": [{"id": doc_id, "text": f"document named {doc_id[:40]}"}]})
    assert stored.status_code == 200, stored.text
    hits = api.post("/search/", json={"query": f"document named {doc_id[:40]}", "top_k": 1}).json()["results"]
    assert hits[0]["id"] == doc_id
    assert api.post("/delete/", json={"ids": [doc_id]}).json() == {"deleted": 1, "count": 0}
    # The tenant's data stays in its one folder under PERSIST_DIR (beside the snapshots the
    # service itself may have taken): ids are never paths.
    folders = [path.name for path in (service.workdir / "data").iterdir() if not path.name.startswith(".")]
    assert set(folders) - {SNAPSHOTS_DIR} == {tenant_slug(E2E_TENANT)}


@pytest.mark.parametrize(
    ("doc_id", "problem"),
    [("a\x00b", "should match pattern"), ("x" * 10_000, "at most 256 characters"), ("", "at least 1 character")],
)
def test_an_id_with_nul_or_10000_characters_is_refused_clearly(api, doc_id, problem):
    response = api.post("/embed/", json={"documents": [{"id": doc_id, "text": "text"}]})
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "documents.0.id" and problem in body["message"]
    assert api.get("/healthz/").json()["count"] == 0


def test_the_api_key_never_appears_in_answers_or_logs(api, service: ServeInstance):
    answers = [
        httpx.get(f"{service.url}/healthz/").text,
        httpx.post(f"{service.url}/search/", headers={"X-API-Key": E2E_API_KEY[:-1]}, json={}).text,
        api.post("/embed/", json={"documents": [{"text": 5}]}).text,
        httpx.get(f"{service.url}/openapi.json").text,
    ]
    assert not any(E2E_API_KEY in answer for answer in answers)
    logs = [service.log_path, *service_logs(service.launcher_pids)]
    assert len(logs) > 5  # Ray's session logs were found
    leaking = [path.name for path in logs if E2E_API_KEY in path.read_text(errors="replace")]
    assert not leaking


def haproxy_config(service: ServeInstance) -> Path:
    """The generated HAProxy configuration, as the running HAProxy was started with it (-f)."""
    assert service.process is not None
    for _, command in session_processes(service.process.pid):
        words = command.split()
        if words and words[0].endswith("haproxy") and "-f" in words:
            return Path(words[words.index("-f") + 1])
    raise AssertionError("no HAProxy process found")


def test_thousands_of_idle_connections_do_not_starve_the_api(service: ServeInstance):
    """Half-sent requests without a key: HAProxy holds them (up to its maxconn, well above Serve's
    default 4,096) and drops each after `timeout client`; meanwhile everyone else is answered."""
    config = haproxy_config(service).read_text()
    assert f"timeout client {CLIENT_TIMEOUT_S}s" in config  # also the header timeout (none of its own)
    maxconn = int(re.search(r"^\s*maxconn (\d+)", config, flags=re.MULTILINE).group(1))  # type: ignore[union-attr]
    idle = min(5_000, maxconn - 500)
    assert idle > 4_096, config  # more than Serve's default would have let in at all
    sockets = []
    try:
        for _ in range(idle):
            connection = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            connection.sendall(b"GET /healthz/ HT")  # a request line cut short, never finished
            sockets.append(connection)
        with httpx.Client(base_url=service.url, timeout=10) as client:
            started = time.monotonic()
            assert client.get("/healthz/").status_code == 200
            keyed = client.get("/count/", headers={"Authorization": f"Bearer {E2E_API_KEY}"})
            assert keyed.status_code == 200 and time.monotonic() - started < 10, keyed.text
    finally:
        for connection in sockets:
            connection.close()


def test_rays_token_and_haproxys_socket_are_the_service_users_alone(service: ServeInstance):
    config = haproxy_config(service)
    private = config.parents[2]  # <private>/hap/<node id>/haproxy.cfg (deployments.launch)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700, private
    token = private / "ray-auth-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text()) == 64
    assert (config.parent / "admin.sock").is_socket()  # inside the private folder, not /tmp/haproxy-serve
