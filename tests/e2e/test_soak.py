"""The short soak: `make soak`'s code, 16 clients for about 25 s against the shared service.

It stays inside the tenant's quota (48 ids in play of E2E_QUOTA 60) and deletes everything it
stored, so the collection's count is back to zero for the tests after it."""

import pytest

from bench.soak import MEMORY_GROWTH_SLACK_MB, SoakConfig, run_soak
from tests.e2e.conftest import E2E_API_KEY, E2E_QUOTA, E2E_TENANT

pytestmark = pytest.mark.e2e

CLIENTS = 16
POOL = 3 * CLIENTS  # 48 ids: under E2E_QUOTA whatever the mix does
# A gross leak only: 25 s on a shared 2-core box is too short to see a slow one (that is what
# `make soak` is for), and PSS moves by hundreds of MB when other processes on the machine map or
# unmap the same libraries. The service is 1.2-1.6 GB here, so 1.5x is a real blow-up.
MEMORY_BLOW_UP_RATIO = 1.5


def test_sixteen_clients_mixing_writes_searches_and_deletes_lose_nothing(service, api):
    assert POOL <= E2E_QUOTA
    config = SoakConfig(
        url=service.url,
        api_key=E2E_API_KEY,
        duration_s=25,
        clients=CLIENTS,
        pool=POOL,
        max_requests=1_000,
        warmup_s=5,
        sample_every_s=2,
        verify_sample=POOL,  # every stored id is searched for by its text
    )
    report = run_soak(config, pid=service.process.pid)
    table = report.render()
    print(table)

    assert report.tenant_id == E2E_TENANT, table  # this instance, not another one on this machine
    assert report.verification.before == 0, table  # every e2e test leaves the collection empty
    assert report.stats.requests >= CLIENTS, table  # every client got going
    assert report.server_errors == 0, table
    assert report.unexpected_4xx == 0, table
    assert report.verification.zero_lost, table
    assert report.verification.zero_extra, table
    assert report.consistent_reads, table
    limit = report.memory_start_mb * MEMORY_BLOW_UP_RATIO + MEMORY_GROWTH_SLACK_MB
    assert report.memory_end_mb <= limit, table
    after = api.get("/healthz/").json()
    assert (after["tenant_id"], after["count"]) == (E2E_TENANT, 0), after  # run_soak deleted what it stored
