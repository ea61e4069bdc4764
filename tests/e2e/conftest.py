"""One real service shared by every end-to-end test, started as in production (`python -m
deployments.launch`, which runs `serve run` on the shipped serve_config.yaml) on free ports, with
the real model and a real chromadb folder in a temporary directory."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bench.ports import free_port, port_is_free, side_ports
from deployments import procfs

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180
# A tenant id with a path, spaces and unicode, to prove any id the platform sends is safe.
E2E_TENANT = "e2e tenant/../ünïcode"
E2E_QUOTA = 60
E2E_API_KEY = "e2e-api-key-0123456789abcdef"


def session_processes(session: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in `session`. The launcher starts in its own
    session; Ray's workers and HAProxy stay in it but get process groups of their own."""
    found = []
    for member in procfs.processes():
        if member.session == session and member.running and (command := procfs.command_line(member.pid)) is not None:
            found.append((member.pid, command))
    return found


def kill_session(session: int) -> None:
    for pid, _ in session_processes(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def service_logs(launcher_pids: list[int]) -> list[Path]:
    """Every log Ray wrote for these launchers: a session folder is named after its driver's pid."""
    paths: list[Path] = []
    for pid in launcher_pids:
        for session in Path("/tmp/ray").glob(f"session_*_{pid}"):
            paths += session.glob("logs/**/*.log")
            paths += session.glob("logs/**/*.err")
            paths += session.glob("logs/**/*.out")
    return paths


class PatientTransport(httpx.HTTPTransport):
    """A well-behaved client: on a 429 it waits Retry-After and sends the request again. The plan's
    rate limits hold for the tests too, and a fast burst of test requests may meet them."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(10):
            response = super().handle_request(request)
            if response.status_code != 429:
                return response
            response.read()
            response.close()
            time.sleep(float(response.headers.get("retry-after", "1")))
        return response


def patient_client(url: str, **options: Any) -> httpx.Client:
    return httpx.Client(base_url=url, transport=PatientTransport(), **options)


class ServeInstance:
    """The launcher in its own process group, on its own private Ray cluster."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        deployments: dict[str, dict[str, Any]] | None = None,
        logging_config: dict[str, Any] | None = None,
    ) -> None:
        """`deployments`: options to change in the shipped serve_config.yaml, by deployment name;
        `logging_config`: entries to change in its logging_config."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, **side_ports()}
        config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
        config["http_options"]["port"] = self.port
        config["logging_config"].update(logging_config or {})
        for deployment in config["applications"][0]["deployments"]:
            deployment.update((deployments or {}).get(deployment["name"], {}))
        self.config_path = workdir / "serve_config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.launcher_pids: list[int] = []  # one per start, for their logs

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
        self.launcher_pids.append(self.process.pid)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve run exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                health = httpx.get(f"{self.url}/healthz/", timeout=2)
                # Only our own tenant's answer counts: never another instance's on a reused port.
                if health.status_code == 200 and health.json()["tenant_id"] == self.env.get("TENANT_ID", "default"):
                    return
            except (httpx.HTTPError, ValueError, KeyError):
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
        kill_session(self.process.pid)  # whatever is left (HAProxy and Ray's workers have their own groups)
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
    with patient_client(service.url, timeout=60, headers=headers) as client:
        yield client
