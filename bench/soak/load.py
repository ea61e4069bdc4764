"""The load: simulated tenant clients, each mixing /embed/, /search/ and /delete/ on its own slice
of the id pool with one request in flight at a time, and the run that drives them all at once."""

import random
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Literal

import httpx

from bench.soak.config import MAX_DELETE_BATCH, MAX_EMBED_BATCH, MIX, SEARCH_TOP_K, SoakConfig
from bench.soak.connection import asked_wait_s, http_client
from bench.soak.memory import MemorySampler
from bench.soak.records import Ledger, Stats
from bench.soak.texts import sentence

Outcome = Literal["ok", "refused", "unknown"]


def classify(status: int) -> Outcome:
    """A 4xx changed nothing (the API validates before it writes, and a write is all-or-nothing);
    a 5xx may or may not have been applied."""
    if status < 300:
        return "ok"
    return "refused" if status < 500 else "unknown"


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
            wait_s = min(asked_wait_s(response), max(deadline - time.monotonic(), 0.0))
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
