"""After the load: settle what is uncertain, then check the store against the clients' ledgers.
Also the soak's own careful requests, and the clean-up that deletes what it stored."""

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.soak.config import SEARCH_TOP_K, SoakConfig
from bench.soak.connection import asked_wait_s
from bench.soak.health import wait_healthy
from bench.soak.load import Client

DELETE_CHUNK = 100  # ids per /delete/ when settling and cleaning up


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


def post_patiently(http: httpx.Client, path: str, body: dict[str, Any], tries: int = 5) -> httpx.Response | None:
    """POST for the soak's own bookkeeping (verification, settling, clean-up): a 429 is waited out
    as Retry-After asks, a 5xx or no answer is retried after a pause; None if no try succeeded.
    Not chromedb_client's Client: that one retries only 429, 503 and refused connections, and
    raises where this must retry (any 5xx, a timeout) or hand back the answer (a 4xx)."""
    for attempt in range(tries):
        try:
            response = http.post(path, json=body)
        except httpx.HTTPError:
            time.sleep(1 + attempt)
            continue
        if response.status_code == 429:
            time.sleep(asked_wait_s(response))
        elif response.status_code >= 500:
            time.sleep(1 + attempt)
        else:
            return response
    return None


def delete_all(http: httpx.Client, ids: list[str]) -> list[str]:
    """Delete ids in small batches; returns the ids whose delete never succeeded."""
    failed: list[str] = []
    for start in range(0, len(ids), DELETE_CHUNK):
        chunk = ids[start : start + DELETE_CHUNK]
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
