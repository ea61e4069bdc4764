"""`make soak` / `python -m bench.soak`: many clients mixing /embed/, /search/ and /delete/ for a fixed
time, then proof that nothing was lost, nothing came back, no request failed on the server's side
and memory stayed flat. Prints one markdown table; exits 1 when a verdict fails.

Without --url it starts its own service (the shipped launcher and config, an API key, a temporary
data folder) and stops it at the end; with --url it soaks a running instance and then deletes
what it stored (unless --keep). The short version runs in the e2e suite (tests/e2e/test_soak.py).

Why the checks are sound: every client writes only ids from its own slice of the id pool and has
one request in flight at a time, so its ledger (acknowledged upserts minus acknowledged deletes)
is exactly what the store must hold for those ids. A request whose outcome is unknown (5xx,
timeout) marks its ids uncertain; they are settled by an acknowledged delete before the check.
"""

import argparse
import contextlib
import datetime
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from bench import measure
from bench.instance import REPO
from bench.targets import own_service
from chromedb_client.client import retry_after_seconds

DESCRIPTION = "Soak the service: many clients mixing embed, search and delete; verify nothing was lost."
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

Outcome = Literal["ok", "refused", "unknown"]

# Real-looking sentences: combined from these parts, a few thousand distinct texts.
SUBJECTS = (
    "The city council",
    "Our support team",
    "The research group",
    "A local bakery",
    "The quarterly report",
    "The new firmware",
    "The orchestra",
    "A small vineyard",
    "The hospital board",
    "The football club",
    "Engineers at the plant",
    "The school library",
)
VERBS = ("approved", "described", "postponed", "announced", "questioned", "reviewed", "celebrated", "measured")
OBJECTS = (
    "a plan to expand the bicycle lanes",
    "the rising cost of electricity",
    "a recipe for sourdough bread with rye flour",
    "the results of the clinical trial",
    "a fix for the battery drain on older phones",
    "the programme for the winter concert season",
    "the effect of frost on the grape harvest",
    "new visiting hours for the children's ward",
    "the transfer of the team's young striker",
    "a backlog of unanswered customer emails",
    "the reading list for the summer holidays",
    "safety checks on the cooling pumps",
)
CODAS = (
    "after a long public debate",
    "in a meeting on Tuesday",
    "despite strong objections",
    "ahead of the holiday season",
    "for the second year running",
    "with little fanfare",
    "following complaints from residents",
    "in front of a packed hall",
)


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CODAS)}."


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
    """What one client knows the store holds for its own ids."""

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


def classify(status: int) -> Outcome:
    """A 4xx changed nothing (the API validates before it writes, and a write is all-or-nothing);
    a 5xx may or may not have been applied."""
    if status < 300:
        return "ok"
    return "refused" if status < 500 else "unknown"


def http_client(config: SoakConfig) -> httpx.Client:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    return httpx.Client(base_url=config.url, headers=headers, timeout=REQUEST_TIMEOUT_S)


class Client:
    """One simulated tenant client: its own connection, random stream, id slice and ledger."""

    def __init__(self, index: int, config: SoakConfig) -> None:
        self.index = index
        self.rng = random.Random(config.seed * 1_000 + index)
        prefix = f"soak-{config.run_id}-c{index:02d}"
        self.ledger = Ledger([f"{prefix}-{slot:03d}" for slot in range(config.per_client)])
        self.stats = Stats()
        self.http = http_client(config)

    def run(self, deadline: float, max_requests: int) -> None:
        while time.monotonic() < deadline and self.stats.requests < max_requests:
            route = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
            {"embed": self.embed, "search": self.search, "delete": self.delete}[route](deadline)

    def send(self, route: str, body: dict[str, Any], deadline: float) -> tuple[Outcome, dict[str, Any]]:
        """POST one request and record it. A 429 is waited out as asked (up to the deadline) and
        counts as refused: the next step is drawn afresh, as a real client would re-plan."""
        started = time.perf_counter()
        try:
            response = self.http.post(f"/{route}/", json=body)
        except httpx.HTTPError as exc:
            self.stats.statuses[route, type(exc).__name__] += 1
            return "unknown", {}
        self.stats.statuses[route, str(response.status_code)] += 1
        if response.status_code == 429:
            wait_s = min(
                retry_after_seconds(response.headers.get("retry-after")),
                MAX_RETRY_AFTER_S,
                max(deadline - time.monotonic(), 0.0),
            )
            self.stats.throttled_wait_s += wait_s
            time.sleep(wait_s)
            return "refused", {}
        # Only answered requests are timed: a 429 is a fast refusal and would flatter the percentiles.
        self.stats.latencies_ms[route].append((time.perf_counter() - started) * 1000)
        outcome = classify(response.status_code)
        return outcome, response.json() if outcome == "ok" else {}

    def text_for(self, doc_id: str, slot: int) -> str:
        """Mostly a new text (the id's document is replaced), sometimes the stored one again (the
        path that keeps the stored vector). The note number keeps every id's text distinct."""
        old = self.ledger.stored.get(doc_id)
        if old is not None and self.rng.random() < 0.2:
            return old
        return f"Note {self.index}-{slot}: {sentence(self.rng)}"

    def embed(self, deadline: float) -> None:
        slots = self.rng.sample(range(len(self.ledger.ids)), self.rng.randint(1, self.batch(MAX_EMBED_BATCH)))
        texts = {self.ledger.ids[slot]: self.text_for(self.ledger.ids[slot], slot) for slot in slots}
        documents = [{"id": doc_id, "text": text, "metadata": {"client": self.index}} for doc_id, text in texts.items()]
        outcome, _ = self.send("embed", {"documents": documents}, deadline)
        if outcome == "ok":
            self.ledger.upserted(texts)
        elif outcome == "unknown":
            self.ledger.unknown(list(texts))

    def delete(self, deadline: float) -> None:
        ids = self.rng.sample(self.ledger.ids, self.rng.randint(1, self.batch(MAX_DELETE_BATCH)))
        held = sum(doc_id in self.ledger.stored for doc_id in ids)
        exact = not any(doc_id in self.ledger.uncertain for doc_id in ids)
        outcome, body = self.send("delete", {"ids": ids}, deadline)
        if outcome == "ok":
            if exact and body.get("deleted") != held:
                self.stats.delete_count_mismatches += 1
            self.ledger.removed(ids)
        elif outcome == "unknown":
            self.ledger.unknown(ids)

    def search(self, deadline: float) -> None:
        """Half the searches look for one of the client's own stored texts, which must come back
        with its id and its latest text (read-your-writes); the rest are free-text queries."""
        if self.ledger.stored and self.rng.random() < 0.5:
            doc_id, text = self.rng.choice(sorted(self.ledger.stored.items()))
            outcome, body = self.send("search", {"query": text, "top_k": SEARCH_TOP_K}, deadline)
            if outcome == "ok":
                found = {hit["id"]: hit["text"] for hit in body["results"]}
                self.stats.own_reads += 1
                self.stats.own_read_misses += doc_id not in found
                self.stats.stale_texts += doc_id in found and found[doc_id] != text
            return
        self.send("search", {"query": sentence(self.rng), "top_k": self.rng.randint(1, SEARCH_TOP_K)}, deadline)

    def batch(self, limit: int) -> int:
        return min(limit, len(self.ledger.ids))

    def close(self) -> None:
        self.http.close()


class MemorySampler:
    """PSS of the service's process tree every few seconds, in a background thread; the first
    sample is taken at start() and the last at stop()."""

    def __init__(self, pid: int | None, every_s: float) -> None:
        self.pid = pid
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = 0.0

    def start(self) -> None:
        if self.pid is None:
            return
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        if self.pid is None or not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def _sample(self) -> None:
        assert self.pid is not None
        self.samples.append((time.monotonic() - self._started, measure.pss_mb(self.pid)))


@dataclass
class Verification:
    """The store after the load, against the ledgers."""

    before: int  # documents stored before the soak began
    expected: int  # before, plus what the ledgers hold
    counted: int | None  # /healthz/ count; None when another tenant's instance answered at the end
    searched: int
    search_misses: list[str]  # stored ids their own text did not find
    stale: list[str]  # found, with another text than the last acknowledged one
    resurrected: list[str]  # acknowledged deleted, found by their last text
    unsettled: list[str]  # outcome unknown and could not be settled

    @property
    def shortfall(self) -> int:
        return self.expected - self.counted if self.counted is not None else self.expected

    @property
    def zero_lost(self) -> bool:
        return self.counted is not None and self.shortfall <= 0 and not (self.search_misses or self.stale)

    @property
    def zero_extra(self) -> bool:
        return self.counted is not None and self.shortfall >= 0 and not self.resurrected and not self.unsettled


@dataclass
class Report:
    config: SoakConfig
    tenant_id: str  # as /healthz/ said at the start
    elapsed_s: float
    stats: Stats
    verification: Verification
    memory: list[tuple[float, float]]

    def count(self, predicate: Callable[[str], bool]) -> int:
        return sum(n for (_, status), n in self.stats.statuses.items() if predicate(status))

    @property
    def server_errors(self) -> int:
        """5xx and requests that got no answer at all (timeouts, dropped connections)."""
        return self.count(lambda status: not status.isdigit() or int(status) >= 500)

    @property
    def unexpected_4xx(self) -> int:
        """The soak sends only valid requests within the quota: any 4xx but 429 is a bug."""
        return self.count(lambda status: status.isdigit() and 400 <= int(status) < 500 and status != "429")

    @property
    def throttled(self) -> int:
        return self.count(lambda status: status == "429")

    @property
    def consistent_reads(self) -> bool:
        """No stale text and no wrong delete count, ever. A stored text not in its own top 10 is
        allowed rarely: the index is approximate, and heavy update churn (the soak rewrites each id
        every few seconds) costs chromadb's HNSW graph some recall; the document is still stored,
        as the end check's count shows."""
        s = self.stats
        misses_ok = s.own_read_misses <= ANN_MISS_TOLERANCE * s.own_reads
        return misses_ok and s.stale_texts == 0 and s.delete_count_mismatches == 0

    @property
    def memory_start_mb(self) -> float:
        return self.memory[0][1] if self.memory else float("nan")

    @property
    def memory_end_mb(self) -> float:
        return self.memory[-1][1] if self.memory else float("nan")

    @property
    def memory_flat(self) -> bool | None:
        """None when not measured (a --url instance without --pid)."""
        if len(self.memory) < 2:
            return None
        return self.memory_end_mb <= self.memory_start_mb * MEMORY_GROWTH_RATIO + MEMORY_GROWTH_SLACK_MB

    @property
    def verdicts(self) -> dict[str, bool]:
        verdicts = {
            "zero 5xx": self.server_errors == 0,
            "zero lost documents": self.verification.zero_lost,
            "zero extra documents": self.verification.zero_extra,
            "reads see acknowledged writes": self.consistent_reads,
            "zero unexpected 4xx": self.unexpected_4xx == 0,
        }
        if self.memory_flat is not None:
            verdicts["memory flat"] = self.memory_flat
        return verdicts

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())

    def render(self) -> str:
        return "\n".join([self._context(), "", *self._route_rows(), "", *self._check_rows()])

    def _context(self) -> str:
        c = self.config
        return (
            f"Soak of {c.url} ({datetime.date.today().isoformat()}): {c.clients} clients for {self.elapsed_s:.0f} s "
            f"(memory start after {c.warmup_s:.0f} s warm-up), id pool {c.per_client * c.clients} "
            f"({c.per_client} per client), at most {c.max_requests:,} requests per client, "
            f"mix embed:search:delete {MIX['embed']}:{MIX['search']}:{MIX['delete']}."
        )

    def _route_rows(self) -> list[str]:
        rows = [
            "| route | requests | per s | 2xx | 429 | other 4xx | 5xx + no answer | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for route in (*ROUTES, "all"):
            statuses: Counter[str] = Counter()
            for (sent_to, status), n in self.stats.statuses.items():
                if route in ("all", sent_to):
                    statuses[status] += n
            times = (
                self.stats.latencies_ms[route]
                if route != "all"
                else [t for ts in self.stats.latencies_ms.values() for t in ts]
            )
            done = sum(statuses.values())
            ok = sum(n for s, n in statuses.items() if s.startswith("2"))
            throttled = statuses.get("429", 0)
            other_4xx = sum(n for s, n in statuses.items() if s.startswith("4") and s != "429")
            rows.append(
                f"| {route} | {done:,} | {done / self.elapsed_s:.1f} | {ok:,} | {throttled:,} | {other_4xx:,} | "
                f"{done - ok - throttled - other_4xx:,} | {_ms(times, 50)} | {_ms(times, 99)} |"
            )
        return rows

    def _check_rows(self) -> list[str]:
        v, s = self.verification, self.stats
        errors = ", ".join(
            f"{route} {status} x{n}" for (route, status), n in sorted(self.stats.statuses.items()) if status[0] != "2"
        )
        flat = self.memory_flat
        rows = [
            "| check | value | target | met |",
            "|---|---|---|---|",
            f"| non-2xx by status (429 included) | {errors or 'none'} | — | — |",
            f"| 5xx and unanswered requests | {self.server_errors} | 0 | {_yes(self.server_errors == 0)} |",
            f"| unexpected 4xx (not 429) | {self.unexpected_4xx} | 0 | {_yes(self.unexpected_4xx == 0)} |",
            f"| throttled (429), waited out | {self.throttled} ({s.throttled_wait_s:.1f} s) | — | — |",
            f"| documents: ledgers / /healthz/ count | {v.expected:,} / {v.counted if v.counted is not None else '—'} "
            f"| equal | {_yes(v.shortfall == 0)} |",
            f"| lost: stored ids their text did not find, of {v.searched} searched (+ stale text) "
            f"| {len(v.search_misses)} (+ {len(v.stale)}) | 0 | {_yes(v.zero_lost)} |",
            f"| extra: deleted ids found again (+ unsettled) | {len(v.resurrected)} (+ {len(v.unsettled)}) | 0 "
            f"| {_yes(v.zero_extra)} |",
            f"| during the load: own text not in its top 10 (of {s.own_reads:,}) / stale / wrong `deleted` | "
            f"{s.own_read_misses} / {s.stale_texts} / {s.delete_count_mismatches} | "
            f"≤ {ANN_MISS_TOLERANCE:.0%} / 0 / 0 | {_yes(self.consistent_reads)} |",
            f"| memory PSS start / end, MB | {_mb(self.memory_start_mb)} / {_mb(self.memory_end_mb)} | end ≤ start x "
            f"{MEMORY_GROWTH_RATIO:.2f} + {MEMORY_GROWTH_SLACK_MB:.0f} | {'—' if flat is None else _yes(flat)} |",
            f"| memory trend, MB every {self.config.sample_every_s:g} s | {self._trend()} | — | — |",
        ]
        return rows

    def _trend(self) -> str:
        if len(self.memory) < 2:
            return "not measured"
        return " → ".join(f"{mb:,.0f}" for _, mb in self.memory)


def _ms(times: list[float], q: float) -> str:
    return f"{measure.percentile(times, q):,.1f}" if times else "—"


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value == value else "—"  # NaN: not measured


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def wait_healthy(http: httpx.Client, timeout_s: float = HEALTHY_TIMEOUT_S) -> dict[str, Any]:
    """/healthz/'s body once it says every deployment answers: an instance just (re)started may
    answer 503 "degraded", with no count, for a while."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = http.get("/healthz/")
            last = f"{response.status_code} {response.text[:500]}"
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
        time.sleep(1)
    raise RuntimeError(f"{http.base_url} not healthy after {timeout_s:.0f} s: {last}")


def check_room(health: dict[str, Any], config: SoakConfig) -> int:
    """The documents already stored; refuses a pool that could push the tenant past its quota
    (a 403 mid-soak would be the soak's fault, not the service's)."""
    if config.per_client < 1:
        raise ValueError(f"--pool {config.pool} is smaller than --clients {config.clients}")
    count, quota = int(health["count"]), int(health["quota"])
    if count + config.per_client * config.clients > quota:
        raise ValueError(f"{count} stored + pool {config.pool} exceeds the quota {quota}: lower --pool")
    return count


def run_load(clients: list[Client], config: SoakConfig, sampler: MemorySampler) -> float:
    """Every client loops until the deadline (or its request cap); memory sampling starts after the
    warm-up so "start" is the service under load, not idle. Returns the seconds the load ran."""
    started = time.monotonic()
    deadline = started + config.duration_s
    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(client.run, deadline, config.max_requests) for client in clients]
        wait(futures, timeout=config.warmup_s)
        sampler.start()
        for future in futures:
            future.result()  # a bug in a client thread surfaces here
    elapsed = time.monotonic() - started
    sampler.stop()
    return elapsed


def post_patiently(http: httpx.Client, path: str, body: dict[str, Any], tries: int = 5) -> httpx.Response | None:
    """POST for the soak's own bookkeeping (verification, settling, clean-up): a 429 is waited out
    as Retry-After asks, a 5xx or no answer is retried after a pause; None if no try succeeded."""
    for attempt in range(tries):
        try:
            response = http.post(path, json=body)
        except httpx.HTTPError:
            time.sleep(1 + attempt)
            continue
        if response.status_code == 429:
            time.sleep(min(retry_after_seconds(response.headers.get("retry-after")), MAX_RETRY_AFTER_S))
        elif response.status_code >= 500:
            time.sleep(1 + attempt)
        else:
            return response
    return None


def delete_all(http: httpx.Client, ids: list[str]) -> list[str]:
    """Delete ids in small batches; returns the ids whose delete never succeeded."""
    failed: list[str] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        response = post_patiently(http, "/delete/", {"ids": chunk})
        if response is None or response.status_code != 200:
            failed.extend(chunk)
    return failed


def settle(http: httpx.Client, clients: list[Client]) -> list[str]:
    """Ids whose last write has an unknown outcome are deleted, so the ledger knows them absent."""
    unsettled: list[str] = []
    for client in clients:
        uncertain = sorted(client.ledger.uncertain)
        failed = delete_all(http, uncertain)
        client.ledger.removed([doc_id for doc_id in uncertain if doc_id not in failed])
        client.ledger.uncertain -= set(uncertain) - set(failed)
        unsettled.extend(failed)
    return unsettled


def found_by_text(http: httpx.Client, doc_id: str, text: str) -> str | None:
    """The text stored under doc_id if a search for `text` returns doc_id, else None."""
    response = post_patiently(http, "/search/", {"query": text, "top_k": SEARCH_TOP_K})
    if response is None or response.status_code != 200:
        raise RuntimeError(f"verification search failed: {response.text if response else 'no answer'}")
    return next((hit["text"] for hit in response.json()["results"] if hit["id"] == doc_id), None)


def verify(http: httpx.Client, clients: list[Client], start: dict[str, Any], config: SoakConfig) -> Verification:
    """No GET-by-id route exists: the count must equal the ledgers' total, a sample of stored ids
    must be found by their own text (with that text), and deleted ids must not be found by theirs.
    The count only counts if the same tenant's instance answers as at the start."""
    unsettled = settle(http, clients)
    rng = random.Random(config.seed)
    stored = sorted((doc_id, text) for c in clients for doc_id, text in c.ledger.stored.items())
    deleted = sorted((doc_id, text) for c in clients for doc_id, text in c.ledger.deleted.items())
    sample = rng.sample(stored, min(config.verify_sample, len(stored)))
    found = {doc_id: found_by_text(http, doc_id, text) for doc_id, text in sample}
    gone = rng.sample(deleted, min(config.verify_sample, len(deleted)))
    end = wait_healthy(http)
    return Verification(
        before=int(start["count"]),
        expected=int(start["count"]) + len(stored),
        counted=end["count"] if end["tenant_id"] == start["tenant_id"] else None,
        searched=len(sample),
        search_misses=[doc_id for doc_id, text in sample if found[doc_id] is None],
        stale=[doc_id for doc_id, text in sample if found[doc_id] not in (None, text)],
        resurrected=[doc_id for doc_id, text in gone if found_by_text(http, doc_id, text) is not None],
        unsettled=unsettled,
    )


def run_soak(config: SoakConfig, pid: int | None = None, keep: bool = False) -> Report:
    """The whole soak against a running service: load, verification, then (unless keep) deletion
    of everything it stored, so the tenant's count is what it was before."""
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=DESCRIPTION)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pool", type=int, default=800, help="ids in play across all clients (under the quota)")
    parser.add_argument("--max-requests", type=int, default=5_000, help="per client")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before memory 'start'")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="soak this running instance instead of starting one")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="with --url (default: $API_KEY)")
    parser.add_argument("--pid", type=int, help="with --url: the launcher's pid, to measure memory")
    parser.add_argument("--keep", action="store_true", help="with --url: leave the soak's documents stored")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache", help="keeps the ONNX export")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    options: dict[str, Any] = {
        "duration_s": args.duration,
        "clients": args.clients,
        "pool": args.pool,
        "max_requests": args.max_requests,
        "warmup_s": args.warmup,
        "sample_every_s": args.sample_every,
        "seed": args.seed,
    }
    if args.url:
        report = run_soak(SoakConfig(url=args.url, api_key=args.api_key, **options), args.pid, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
            quota = max(10_000, 2 * args.pool)
            with own_service(Path(scratch), args.cache_dir, quota, tenant_id="soak") as (service, api_key):
                report = run_soak(SoakConfig(url=service.url, api_key=api_key, **options), service.pid)
    print("\n" + report.render() + "\n")
    failed = [name for name, ok in report.verdicts.items() if not ok]
    print("FAILED: " + ", ".join(failed) if failed else "all verdicts met", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
