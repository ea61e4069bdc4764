"""Searches while a tenant imports: one client searching back to back while importers post
batches of passages, against the same import with nobody searching (the load a tenant makes when
an import runs during the working day)."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from bench import measure
from bench.workload import Passage

SEARCH_TIMEOUT_S = 30.0
IMPORT_TIMEOUT_S = 600.0


@dataclass
class Mixed:
    alone_per_s: float  # documents imported per second with nobody searching
    mixed_per_s: float  # the same import while one client searches
    latencies_ms: list[float] = field(default_factory=list)  # of the searches answered 200
    errors: list[str] = field(default_factory=list)  # each other answer: its status or exception
    import_errors: list[str] = field(default_factory=list)

    @property
    def import_ratio(self) -> float:
        return self.mixed_per_s / self.alone_per_s if self.alone_per_s else float("nan")


def searches_during_import(
    url: str, passages: list[Passage], queries: list[str], batch: int, importers: int, documents: int
) -> Mixed:
    """Import `documents` passages (new texts each phase, so the model runs) in `batch`-sized
    requests from `importers` clients, alone and then beside a searching client."""
    import_errors: list[str] = []
    alone = _import(url, fresh_passages(passages, documents, "alone"), batch, importers, import_errors)
    with _searching(url, queries) as searches:
        mixed = _import(url, fresh_passages(passages, documents, "mixed"), batch, importers, import_errors)
    return Mixed(alone, mixed, searches.latencies_ms, searches.errors, import_errors)


def fresh_passages(passages: list[Passage], count: int, phase: str) -> list[Passage]:
    """`count` passages whose texts nothing stored holds yet (an unchanged text reuses its vector)."""
    return [Passage(f"{phase}-{n}", f"[{phase} {n}] {passages[n % len(passages)].text}") for n in range(count)]


def _import(url: str, passages: list[Passage], batch: int, clients: int, errors: list[str]) -> float:
    """Documents stored per second."""
    batches = [passages[i : i + batch] for i in range(0, len(passages), batch)]

    def send(documents: list[Passage]) -> int:
        body = {"documents": [{"id": p.id, "text": p.text} for p in documents]}
        try:
            response = httpx.post(f"{url}/embed/", json=body, timeout=IMPORT_TIMEOUT_S)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            return 0
        if response.status_code != 200:
            errors.append(str(response.status_code))
            return 0
        return len(documents)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        stored = sum(pool.map(send, batches))
    return stored / (time.perf_counter() - started)


@dataclass
class _Searches:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def _searching(url: str, queries: list[str]) -> Iterator[_Searches]:
    """One client searching back to back (each search sent when the last one is answered)."""
    searches = _Searches()

    def search(stop: threading.Event) -> None:
        with httpx.Client(base_url=url, timeout=SEARCH_TIMEOUT_S) as client:
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post("/search/", json={"query": queries[n % len(queries)], "top_k": 10})
                except httpx.HTTPError as exc:
                    searches.errors.append(type(exc).__name__)
                else:
                    if response.status_code == 200:
                        searches.latencies_ms.append((time.perf_counter() - started) * 1000)
                    else:
                        searches.errors.append(str(response.status_code))
                n += 1

    with measure.in_background(search):
        yield searches
