"""Ports for a service started beside others on one machine (benchmarks, soaks, end-to-end tests)."""

import random
import socket

# Besides the API port, every listener whose default port two instances on one machine would
# share: HAProxy's metrics and stats, and Serve's fallback proxy (HAProxy's backup route while the
# Ingress restarts) which, on a shared default port, could be another tenant's instance.
SIDE_PORT_VARIABLES = (
    "RAY_SERVE_HAPROXY_METRICS_PORT",
    "RAY_SERVE_HAPROXY_STATS_PORT",
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
)


def free_port() -> int:
    """A free port below the ephemeral range, where Ray's own randomly chosen ports cannot take it
    while the service restarts (Ray's workers use 10002-19999, replicas 30000-31000)."""
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


def side_ports() -> dict[str, str]:
    """Environment giving an instance free side ports of its own."""
    return {name: str(free_port()) for name in SIDE_PORT_VARIABLES}
