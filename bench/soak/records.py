"""What each client records while it runs: its Stats (every request's outcome and latency, and its
reads of its own writes) and its Ledger (what the store must hold for the client's ids)."""

from collections import Counter
from dataclasses import dataclass, field

from bench.soak.config import ROUTES


@dataclass
class Stats:
    """One client's requests: latencies of answered requests, and every outcome by status."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {route: [] for route in ROUTES})
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, "200" | "ReadTimeout" ...)
    throttled_wait_s: float = 0.0
    # Reads of the client's own writes that disagreed with its ledger (found missing, old text,
    # a delete's `deleted` differing from how many of its ids the ledger held).
    own_reads: int = 0
    own_read_misses: int = 0
    stale_texts: int = 0
    delete_count_mismatches: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def merge(self, other: "Stats") -> None:
        for route in ROUTES:
            self.latencies_ms[route].extend(other.latencies_ms[route])
        self.statuses.update(other.statuses)
        self.throttled_wait_s += other.throttled_wait_s
        self.own_reads += other.own_reads
        self.own_read_misses += other.own_read_misses
        self.stale_texts += other.stale_texts
        self.delete_count_mismatches += other.delete_count_mismatches


@dataclass
class Ledger:
    """What one client knows the store holds for its own ids. Sound because only this client
    writes these ids, one request at a time."""

    ids: list[str]
    stored: dict[str, str] = field(default_factory=dict)  # id -> text, acknowledged
    deleted: dict[str, str] = field(default_factory=dict)  # id -> last text, acknowledged gone
    uncertain: set[str] = field(default_factory=set)  # the last write's outcome is unknown

    def upserted(self, texts: dict[str, str]) -> None:
        for doc_id, text in texts.items():
            self.stored[doc_id] = text
            self.deleted.pop(doc_id, None)
            self.uncertain.discard(doc_id)

    def removed(self, ids: list[str]) -> None:
        for doc_id in ids:
            if doc_id in self.stored:
                self.deleted[doc_id] = self.stored.pop(doc_id)
            self.uncertain.discard(doc_id)

    def unknown(self, ids: list[str]) -> None:
        for doc_id in ids:
            self.stored.pop(doc_id, None)
            self.deleted.pop(doc_id, None)
            self.uncertain.add(doc_id)
