"""One whole soak against a running service: load, verification, clean-up, report."""

from bench.soak.config import SoakConfig
from bench.soak.connection import http_client
from bench.soak.health import check_room, wait_healthy
from bench.soak.load import Client, run_load
from bench.soak.memory import MemorySampler
from bench.soak.records import Stats
from bench.soak.report import Report
from bench.soak.verify import delete_all, verify


def run_soak(config: SoakConfig, pid: int | None = None, keep: bool = False) -> Report:
    """The whole soak against a running service: load, verification, then (unless keep) deletion
    of everything it stored, so the tenant's count is what it was before. `pid`: the launcher's,
    whose process tree's memory is sampled; None measures no memory."""
    clients = [Client(index, config) for index in range(config.clients)]
    with http_client(config) as http:
        start = wait_healthy(http)
        check_room(start, config)
        try:
            sampler = MemorySampler(pid, config.sample_every_s)
            elapsed = run_load(clients, config, sampler)
            verification = verify(http, clients, start, config)
        finally:
            for client in clients:
                client.close()
            if not keep:
                delete_all(http, [doc_id for client in clients for doc_id in client.ledger.ids])
    stats = Stats()
    for client in clients:
        stats.merge(client.stats)
    return Report(config, start["tenant_id"], elapsed, stats, verification, sampler.samples)
