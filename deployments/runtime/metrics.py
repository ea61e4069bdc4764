"""The service's own Prometheus metrics, recorded through Ray's metrics API.

Ray's metrics agent (on loopback, port config.METRICS_PORT_ENV) exports them together with Ray's and Ray
Serve's own; `GET /metrics/` serves that export on the API port, so one scrape of the instance gets
everything (README: Observability). Prometheus shows them with Ray's `ray_` prefix. Outside Ray
(unit and contract tests) recording is a no-op.
"""

from ray.util.metrics import Counter, Gauge, Histogram

SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]

documents = Gauge("cdbi_documents", "Documents stored (chunks not counted).")
quota_used = Gauge("cdbi_quota_used_ratio", "Documents stored over the quota (MAX_DOCS).")
embed_batch = Histogram(
    "cdbi_embed_batch_texts",
    "Texts the model embedded in one run (a dynamic batch of requests).",
    boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
)
request_seconds = Histogram(
    "cdbi_request_seconds", "Time from request to answer, by route.", boundaries=SECONDS, tag_keys=("route",)
)
rejected = Counter(
    "cdbi_rejected_requests_total",
    "Requests answered with an error, by the error's name (rate_limited, validation_error, ...).",
    tag_keys=("reason",),
)

store_reads = Counter(
    "cdbi_store_reads_total",
    "The Ingress's reads of the store (searches, lookups, counts), by the way they went: over the store's "
    "same-host read channel, or over a Serve call (until the channel opens, when it breaks, across hosts).",
    tag_keys=("path",),
)


def record_count(count: int, quota: int) -> None:
    documents.set(count)
    quota_used.set(count / quota)
