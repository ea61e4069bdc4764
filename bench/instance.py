"""One running instance of the product, started as in production: `python -m deployments.launch`
(which runs `serve run`) on a copy of a shipped serve_config with its own free ports, in its own
process session. Shared by the benchmark, the soak, the evaluation and the end-to-end tests."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from bench.ports import free_port, port_is_free, side_ports
from deployments.core.config import METRICS_PORT_ENV

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60


def session_processes(session: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in `session`. The launcher starts in its own
    session; Ray's workers and HAProxy stay in it but get process groups of their own."""
    found = []
    for member in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(member.pid) == session and member.info["status"] != psutil.STATUS_ZOMBIE:
                found.append((member.pid, " ".join(member.info["cmdline"] or [])))
    return found


def kill_session(session: int) -> None:
    for pid, _ in session_processes(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until_up(up: Callable[[], bool], process: subprocess.Popen[bytes], started: float) -> float:
    """Seconds from `started` (perf_counter) until `up()`, polled every 50 ms; RuntimeError if
    `process` exits first or START_TIMEOUT_S passes."""
    while time.perf_counter() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        if up():
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"{process.args!r} not up after {START_TIMEOUT_S:g} s")


class ServeInstance:
    """The launcher in its own session, on its own private Ray cluster."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        config: str = "serve_config.yaml",
        deployments: dict[str, dict[str, Any]] | None = None,
        logging_config: dict[str, Any] | None = None,
        args: dict[str, Any] | None = None,
        repo: Path = REPO,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """`env`: the tenant's settings (over this process's environment); `deployments`: options
        to change in the shipped `config`, by deployment name; `logging_config`: entries to change
        in its logging_config; `args`: entries to change in the application's `args` (app.GraphArgs).
        The port is the only other change. `repo`: the checkout whose code and config run (another
        revision's worktree for bench.compare). `wrapper`: a command the launcher runs under (its
        arguments follow), as a test's private mount namespace."""
        self.workdir = workdir
        self.repo = repo
        self.wrapper = wrapper
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Ray's metrics export port too: the launcher would otherwise choose it in its own process,
        # blind to the ports chosen here and not yet bound.
        self.env = {**os.environ, **env, **side_ports(), METRICS_PORT_ENV: str(free_port())}
        shipped = yaml.safe_load((repo / config).read_text())
        shipped["http_options"]["port"] = self.port
        shipped["logging_config"].update(logging_config or {})
        application = shipped["applications"][0]
        application["args"] = {**application.get("args", {}), **(args or {})}
        for deployment in application["deployments"]:
            deployment.update((deployments or {}).get(deployment["name"], {}))
        self.config_path = workdir / "serve_config.yaml"
        self.config_path.write_text(yaml.safe_dump(shipped))
        self.log_path = workdir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.launcher_pids: list[int] = []  # one per start, for their logs

    def start(self) -> float:
        """Start and wait until healthy; returns the seconds that took (start to first 200)."""
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "deployments.launch", str(self.config_path)],
                cwd=self.repo,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.launcher_pids.append(self.process.pid)
        try:
            return wait_until_up(self._healthy, self.process, started)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log_tail()}") from None

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.url}/healthz/", timeout=2)
            # Only our own tenant's answer counts: never another instance's on a reused port.
            return health.status_code == 200 and health.json()["tenant_id"] == self.env.get("TENANT_ID", "default")
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def stop(self) -> None:
        """As a container stop does: SIGTERM to the launcher, whose clean shutdown drains HAProxy
        and stops Serve and its private Ray; then whatever of its session is left is killed."""
        if self.process is None:
            return
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        kill_session(self.process.pid)  # HAProxy and Ray's workers have process groups of their own
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
