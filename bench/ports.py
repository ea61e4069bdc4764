"""Ports for a service started beside others on one machine (benchmarks, soaks, end-to-end tests)."""

from deployments.runtime.ports import free_port, port_is_free

__all__ = ["free_port", "port_is_free", "side_ports"]

# Besides the API port, every listener whose default port two instances on one machine would
# share: HAProxy's metrics and stats, and Serve's fallback proxy (HAProxy's backup route while the
# Ingress restarts) which, on a shared default port, could be another tenant's instance.
SIDE_PORT_VARIABLES = (
    "RAY_SERVE_HAPROXY_METRICS_PORT",
    "RAY_SERVE_HAPROXY_STATS_PORT",
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
)


def side_ports() -> dict[str, str]:
    """Environment giving an instance free side ports of its own."""
    return {name: str(free_port()) for name in SIDE_PORT_VARIABLES}
