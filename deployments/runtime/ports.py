"""Choosing a free TCP port that nothing else on the machine will take meanwhile.

A port the kernel hands out for `bind(("", 0))` lies in the ephemeral range, which every outgoing
connection draws its local port from (Ray's processes open hundreds): between choosing it and the
listener binding it, seconds later in another process, a connection can take it and that
listener fails to start. Ports below the ephemeral range, away from the ranges Ray picks its own
from (workers 10002-19999, replicas' HTTP 30000-31000 and gRPC 40000-41000), stay free.

A port handed out is not bound until its listener starts, tens of seconds later, and until then
still looks free: so a process never hands out the same port twice (one instance's several side
ports, or two instances started one after the other by one test run, would otherwise share one
now and then, and the second listener fails with "Address already in use").
"""

import random
import socket

PORT_RANGE = range(20_000, 30_000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port in PORT_RANGE with no listener on any interface, and not handed out before by
    this process."""
    for port in random.sample(PORT_RANGE, 200):
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True
