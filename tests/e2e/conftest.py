"""One real service shared by every end-to-end test, started as in production (`python -m
deployments.launch`, which runs `serve run` on the shipped serve_config.yaml) on free ports, with
the real model and a real chromadb folder in a temporary directory."""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180
# A tenant id with a path, spaces and unicode, to prove any id the platform sends is safe.
E2E_TENANT = "e2e tenant/../ünïcode"
E2E_QUOTA = 60
E2E_API_KEY = "e2e-api-key-0123456789abcdef"


def free_port() -> int:
    """A free port below the ephemeral range, where Ray's own randomly chosen ports cannot take it
    while the service restarts (Ray's workers use 10002-19999)."""
    for port in random.sample(range(20_000, 30_000), 200):
        if port_is_free(port):
            return port
    raise RuntimeError("no free port in 20000-29999")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


class ServeInstance:
    """The launcher in its own process group, on its own private Ray cluster."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # HAProxy's metrics and stats listeners too, so a developer's running instance never clashes.
        ports = {"RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()), "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port())}
        self.env = {**os.environ, **env, **ports}
        config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
        config["http_options"]["port"] = self.port
        self.config_path = workdir / "serve_config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deployments.launch", str(self.config_path)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve run exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"service not healthy after {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        # SIGINT is serve run's clean shutdown (serve.shutdown, then the private Ray cluster stops).
        self.process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
        self.process.wait()
        self.process = None
        deadline = time.monotonic() + 30
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeInstance]:
    workdir = tmp_path_factory.mktemp("serve")
    instance = ServeInstance(
        workdir,
        {
            "TENANT_ID": E2E_TENANT,
            "PLAN": "starter",
            "MAX_DOCS": str(E2E_QUOTA),
            "PERSIST_DIR": str(workdir / "data"),
            "API_KEY": E2E_API_KEY,
        },
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def api(service: ServeInstance) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {E2E_API_KEY}"}
    with httpx.Client(base_url=service.url, timeout=60, headers=headers) as client:
        yield client
