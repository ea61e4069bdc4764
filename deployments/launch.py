"""Start the service: `python -m deployments.launch [serve_config.yaml]` (what `make run`, the
container, the end-to-end tests and the benchmark all use).

1. Checks the settings; a bad one exits 2 with one line naming the variable (a bare `serve run`
   would only log a failed deployment and keep running).
2. Starts a lean local Ray: no dashboard, API server or autoscaler monitor, Serve's throughput-
   optimised request path, and HAProxy in front of the Ingress replica's own HTTP server in place
   of Serve's Python proxy.
3. Runs exactly `serve run <config>` in this process (it keeps the Ray started above).
"""

import contextlib
import os
import resource
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import psutil

from deployments.core.config import METRICS_PORT_ENV
from deployments.core.preflight import checked_settings
from deployments.runtime.ports import free_port

# On a stop, HAProxy first finishes the requests in flight, for up to this long, before Serve shuts
# down (README: Reliability: give the container a stop grace period of this plus ~15 s).
DRAIN_TIMEOUT_S = 20.0


def ray_environment() -> dict[str, str]:
    """Defaults for Ray Serve, read at import time and inherited by every Ray process; the
    operator's environment wins over each of them."""
    return {
        # Serve's fast path: user code on the replica's event loop, gRPC between deployments,
        # GC frozen after start-up.
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        # ... but not its 1,000-record log buffer: it holds a replica's log lines (an index rebuild's
        # progress, say) until 1,000 more arrive or an ERROR, and loses them if the process dies.
        # With access logs off (the default) a replica logs a few lines an hour; with them on,
        # raise this for throughput.
        "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
        # Serve's HAProxy mode: HAProxy takes http_options.port (8000) and forwards each request
        # straight to the Ingress replica's own HTTP server (direct ingress), instead of through
        # Serve's Python proxy and a handle call: about half the latency and 1.2x the throughput
        # here. HAProxy re-routes when a restarted replica comes back on another port.
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        # Serve keeps a stopping Ingress replica draining for 30 s by default, for load balancers
        # to notice; a container stop needs only the requests in flight to finish.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
        # A one-machine Ray: its node address is loopback, and with it GCS, raylet, workers and
        # agents listen on 127.0.0.1 only (Ray's single-machine mode; the variable's name is
        # historical). From outside, only the API and HAProxy's listeners can be reached.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Ray starts its workers (every replica) at nice 15, below its own daemons. At 0 instead, the
        # Embedder can run bulk embedding 10 levels below the request path (deployments.embedder),
        # so a search is served first when it and an import want the same core.
        "RAY_worker_niceness": "0",
        # Serve's controller wakes every 0.1 s by default, and with the GCS it answers burned 75 ms of
        # CPU a second on an idle instance here (all of Ray's processes: 180 ms/s). Every 0.5 s: 143
        # ms/s in all, about 2 % of a 2-core machine back for requests, start to first 200 within
        # noise (every 1 s: 123 ms/s, but starts 1.5-2 s later). A dead replica is noticed and an
        # autoscaling decision taken up to half a second later.
        "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
        "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": str(CLIENT_TIMEOUT_S),
        # On a stop (and a reload), HAProxy closes clients' idle keep-alive connections within this
        # many seconds, spread out; without it an idle connection in any client's pool held the
        # drain below for all of DRAIN_TIMEOUT_S (a container stop took 26 s instead of 6).
        # A connection in use is closed after its next response, as before.
        "RAY_SERVE_HAPROXY_CLOSE_SPREAD_TIME_S": str(IDLE_CLOSE_SPREAD_S),
        "RAY_SERVE_HAPROXY_MAXCONN": str(haproxy_maxconn()),
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


# HAProxy's listeners for clients: a request line and headers must arrive, and a body keep
# flowing, within this (Serve's default is an hour: a few thousand half-sent requests would hold
# every connection). Serve offers no separate header timeout; HAProxy then uses this one for it.
CLIENT_TIMEOUT_S = 30
IDLE_CLOSE_SPREAD_S = 2
# Connections HAProxy holds at once (Serve's default 4,096): idle ones cost it a few KB each, and
# past this limit new ones wait in the kernel, /healthz/ included. HAProxy needs two file
# descriptors per connection and more (about 2.5 measured here) and refuses to start if the process's
# hard limit cannot give them.
MAX_CONNECTIONS = 16_384


def haproxy_maxconn() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_CONNECTIONS if hard == resource.RLIM_INFINITY else max(1_024, min(MAX_CONNECTIONS, hard // 3))


def private_environment(folder: Path) -> dict[str, str]:
    """Ray's cluster token and HAProxy's runtime files (admin socket, config, state) in `folder`,
    which only this user can enter, instead of a world-readable ~/.ray/auth_token and a
    world-writable /tmp/haproxy-serve/admin.sock. The token is new for every start."""
    token = folder / "ray-auth-token"
    token.touch(mode=0o600)
    token.write_text(secrets.token_hex(32))
    haproxy = folder / "hap"  # short: a unix socket path (with Serve's node id inside) has 107 bytes at most
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy / "metrics.sock"),
    }


def main(argv: list[str]) -> int:
    config = argv[0] if argv else os.environ.get("SERVE_CONFIG", "serve_config.yaml")
    if checked_settings() is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="cdbi-") as private:  # mode 0700; removed on exit
        for name, value in {**ray_environment(), **private_environment(Path(private))}.items():
            os.environ.setdefault(name, value)
        return _serve(config)


# Processes Ray's head starts that a one-machine, one-tenant Ray never uses: the autoscaler's
# monitor (it adds nodes to a cluster from a cluster config) and the API server, which ray.init
# starts even with include_dashboard=False, in "minimal" mode (jobs, state and Serve REST APIs on
# port 8265: nothing here calls them). About 50 and 85 MB of PSS, a tenth of an idle instance
# (README: Performance). ray.init has no switch for either (the monitor's is `ray start`'s hidden
# --no-monitor; for the API server there is none, ray-project/ray#60096).
UNUSED_HEAD_PROCESSES = ("start_monitor", "start_api_server")


def skip_unused_head_processes() -> None:
    """Make this process's ray.init start neither of UNUSED_HEAD_PROCESSES. Ray already runs
    without an API server that failed to start (it keeps no dashboard URL, as here). A Ray release
    that renames these methods fails the start-up here, loudly, rather than quietly bringing the
    processes back."""
    from ray._private.node import Node

    missing = [name for name in UNUSED_HEAD_PROCESSES if not callable(getattr(Node, name, None))]
    if missing:
        raise RuntimeError(f"this Ray's Node has no {', '.join(missing)}: update launch.UNUSED_HEAD_PROCESSES")
    for name in UNUSED_HEAD_PROCESSES:
        setattr(Node, name, _not_started)


def _not_started(node: object, **options: object) -> None:
    """What a skipped head process's starter does instead."""


def _serve(config: str) -> int:

    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE
    from ray.serve.scripts import cli

    # A private local Ray without the dashboard (about 1 GB and seconds of start-up saved).
    # `serve run` sees Ray already up and skips its own ray.init.
    # Ray's metrics agent exports Ray's, Serve's and our metrics on this loopback port; the Ingress
    # serves them at GET /metrics/ (replicas inherit the variable).
    os.environ.setdefault(METRICS_PORT_ENV, str(free_port()))
    skip_unused_head_processes()
    ray.init(
        address="local",
        namespace=SERVE_NAMESPACE,
        include_dashboard=False,
        _metrics_export_port=int(os.environ[METRICS_PORT_ENV]),
    )
    # A container stop (SIGTERM) takes serve run's own clean shutdown path, as Ctrl-C (SIGINT)
    # does; SIGINT is reset too, since a shell starting us in the background may ignore it.
    # After ray.init, which installs a SIGTERM handler of its own (an abrupt sys.exit).
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cli.main(["run", config], prog_name="serve", standalone_mode=True)
    return 0


_stopping = False


def _stop(signum: int, frame: FrameType | None) -> None:
    """Drain HAProxy, then serve run's clean shutdown; a second signal skips the drain."""
    global _stopping
    if not _stopping:
        _stopping = True
        _drain_haproxy(DRAIN_TIMEOUT_S)
    raise KeyboardInterrupt


def _drain_haproxy(timeout_s: float) -> None:
    """HAProxy's own graceful stop: on SIGUSR1 it closes its listeners at once (new connections are
    refused) and exits once the requests in flight are answered. serve.shutdown() alone would
    SIGKILL it and cut them off."""
    haproxies = [found for found in psutil.Process().children(recursive=True) if _name(found) == "haproxy"]
    for haproxy in haproxies:
        with contextlib.suppress(psutil.NoSuchProcess):
            haproxy.send_signal(signal.SIGUSR1)
    started = time.monotonic()
    while any(_running(haproxy) for haproxy in haproxies) and time.monotonic() < started + timeout_s:
        time.sleep(0.1)
    # One line either way: an operator whose stops are slow sees which part took the time.
    if any(_running(haproxy) for haproxy in haproxies):
        outcome = f"HAProxy still had connections open after {timeout_s:g} s; stopping anyway"
    else:
        outcome = f"HAProxy drained in {time.monotonic() - started:.1f} s"
    print(f"chromedb-instance: stopping: {outcome}", file=sys.stderr, flush=True)


def _name(found: psutil.Process) -> str | None:
    with contextlib.suppress(psutil.Error):
        return str(found.name())
    return None


def _running(found: psutil.Process) -> bool:
    """Alive and not a zombie (exited, not yet reaped by its parent)."""
    with contextlib.suppress(psutil.Error):
        return bool(found.status() != psutil.STATUS_ZOMBIE)
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
