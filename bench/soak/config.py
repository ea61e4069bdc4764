"""What shapes a soak: its SoakConfig, the request mix and sizes, and the limits its verdicts use."""

import secrets
from dataclasses import dataclass, field

ROUTES = ("embed", "search", "delete")
# Searches dominate a tenant's traffic; writes outnumber deletes so the store sits part-full.
MIX = {"embed": 3, "search": 5, "delete": 2}
MAX_EMBED_BATCH = 8
MAX_DELETE_BATCH = 4
SEARCH_TOP_K = 10
# Share of a client's searches for its own stored text that may miss it in the top 10 (see Report.consistent_reads).
ANN_MISS_TOLERANCE = 0.01
REQUEST_TIMEOUT_S = 90  # above serve_config's request_timeout_s (60): the server's timeout shows as a 5xx
MAX_RETRY_AFTER_S = 30.0
HEALTHY_TIMEOUT_S = 120.0
# Memory is flat when end <= start x 1.10 + 50 MB. Both terms absorb what is not a leak on a
# ~1.5 GB process tree: allocator arenas and caches filling once under load (a few %), and PSS
# shifting when other processes on the machine map the same libraries (the model runtime alone is
# hundreds of MB of shared pages). A leak of the size that matters (MBs per minute) exceeds it
# within a 10-minute soak; the per-sample trend in the table shows the slope either way.
MEMORY_GROWTH_RATIO = 1.10
MEMORY_GROWTH_SLACK_MB = 50.0


@dataclass(frozen=True)
class SoakConfig:
    url: str
    api_key: str | None = None
    duration_s: float = 60.0
    clients: int = 16
    pool: int = 800  # ids in play across all clients; the store never holds more than this
    max_requests: int = 5_000  # per client: the load is bounded even if the service is very fast
    warmup_s: float = 10.0  # memory at "start" is measured this long after the load begins
    sample_every_s: float = 5.0
    verify_sample: int = 100  # stored ids searched by their text at the end
    seed: int = 0
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def per_client(self) -> int:
        return self.pool // self.clients
