"""`make bench`'s phases: the import between two halves of its baseline, one client's searches
taking turns between targets (so the host's drift falls on each alike), and the memory under load
read in a phase of its own (reading PSS is dear, so no timed phase pays for it)."""

import argparse
import os
import threading
import time
from typing import cast

import numpy as np
import pytest

from bench import measure
from bench.__main__ import (
    LOAD_DOCUMENTS,
    ONE_CLIENT_BLOCK,
    THROUGHPUT_WINDOWS,
    Figures,
    RawEncode,
    ingest_between_raw_encodes,
    memory_under_load,
    one_client,
    sixteen_clients,
)
from bench.targets import Target
from bench.workload import Passage, Workload
from deployments.embedding.backends import EmbeddingBackend


class RecordingTarget:
    """A target whose import takes a while and whose searches are recorded, in order and by phase
    (`calls` may be shared by several targets)."""

    def __init__(self, name: str = "recording", calls: list[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.calls = calls if calls is not None else []  # (target, query), in the order sent
        self.pid = os.getpid()  # PSS of this process, as of the service's tree
        self.importing = threading.Event()
        self.searches_during_import = 0
        self.searches = 0
        self.imported: list[Passage] = []
        self._lock = threading.Lock()

    def start(self) -> float:
        with self._lock:
            self.calls.append((self.name, "<start>"))
        return 0.0

    def stop(self) -> None:
        with self._lock:
            self.calls.append((self.name, "<stop>"))

    def make_search(self) -> object:
        def search(query: str) -> list[str]:
            with self._lock:
                self.calls.append((self.name, query))
                self.searches += 1
                self.searches_during_import += self.importing.is_set()
            time.sleep(0.002)
            return [query]

        return search

    def ingest(self, passages: list[Passage], batch_size: int, clients: int) -> None:
        self.importing.set()
        time.sleep(0.3)
        self.imported = passages
        self.importing.clear()


def test_clients_search_while_the_import_runs_and_stop_when_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = [Passage(f"doc-{n}", f"text {n}") for n in range(8)]
    workload = Workload(stored, ["a query", "another"], [], [], np.empty((0, 384), dtype=np.float32))
    target = RecordingTarget()
    args = argparse.Namespace(clients=4, ingest_batch=64, ingest_clients=2)
    monkeypatch.setattr(measure, "IDLE_SETTLE_S", 0.01)

    peak_mb, idle_after_mb = memory_under_load(cast(Target, target), workload, args)

    assert peak_mb > 0
    assert idle_after_mb > 0  # read again once the work settled
    assert target.searches_during_import >= 4  # the clients searched during the import
    # New documents, so a service embeds them (an unchanged text would reuse its stored vector).
    assert len(target.imported) == LOAD_DOCUMENTS
    assert not {p.id for p in target.imported} & {p.id for p in stored}
    assert not {p.text for p in target.imported} & {p.text for p in stored}
    searched = target.searches
    time.sleep(0.05)
    assert target.searches == searched  # the clients stopped with the import


def test_one_client_sends_each_target_every_query_in_blocks_that_take_turns() -> None:
    calls: list[tuple[str, str]] = []
    first, second = RecordingTarget("first", calls), RecordingTarget("second", calls)
    first_figures, second_figures = Figures(), Figures()
    queries = [f"query {n}" for n in range(2 * ONE_CLIENT_BLOCK + 3)]

    one_client([(cast(Target, first), first_figures), (cast(Target, second), second_figures)], queries)

    for name, figures in (("first", first_figures), ("second", second_figures)):
        assert [query for target, query in calls if target == name] == queries
        assert figures.found == [[query] for query in queries]  # each answer kept with its query
        assert len(figures.latencies_ms) == len(queries)
        assert all(ms >= 2 for ms in figures.latencies_ms)
    turns = [target for n, (target, _) in enumerate(calls) if n == 0 or calls[n - 1][0] != target]
    assert turns == ["first", "second"] * 3  # two full blocks and the rest, each in turn


def test_sixteen_clients_windows_take_turns_with_each_target_up_alone() -> None:
    calls: list[tuple[str, str]] = []
    first, second = RecordingTarget("first", calls), RecordingTarget("second", calls)
    first_figures, second_figures = Figures(), Figures()
    workload = Workload([], [f"query {n}" for n in range(30)], [], [], np.empty((0, 384), dtype=np.float32))
    args = argparse.Namespace(clients=2, per_client=3)

    sixteen_clients([(cast(Target, first), first_figures), (cast(Target, second), second_figures)], workload, args)

    ups = [call for call in calls if call[1] in ("<start>", "<stop>")]
    assert ups == [("first", "<start>"), ("first", "<stop>"), ("second", "<start>"), ("second", "<stop>")] * (
        THROUGHPUT_WINDOWS
    )
    running = None  # every search goes to the one target up, between its own start and stop
    for target, call in calls:
        if call == "<start>":
            assert running is None
            running = target
        elif call == "<stop>":
            running = None
        else:
            assert target == running
    for figures in (first_figures, second_figures):
        assert figures.per_s_16 > 0
        assert figures.searches_16 == THROUGHPUT_WINDOWS * 2 * 3


class RecordingBackend:
    """A model that records, in `calls` beside a target's, when it encoded which texts."""

    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(("raw encode", f"{len(texts)} texts"))
        return np.array([[float(text.split()[-1])] for text in texts], dtype=np.float32)


def test_the_import_runs_between_two_halves_of_its_raw_encode_with_the_target_down_for_the_second() -> None:
    calls: list[tuple[str, str]] = []
    target = RecordingTarget("service", calls)
    passages = [Passage(f"doc-{n}", f"text {n}") for n in range(9)]
    workload = Workload(passages, ["a query"], [], [], np.empty((0, 1), dtype=np.float32))
    raw = RawEncode(cast(EmbeddingBackend, RecordingBackend(calls)))
    args = argparse.Namespace(ingest_batch=4, ingest_clients=2)

    ingest_between_raw_encodes(cast(Target, target), workload, args, raw)

    assert [call for call in calls if call[1] != "a query"] == [
        ("raw encode", "4 texts"),
        ("service", "<start>"),
        ("service", "<stop>"),
        ("raw encode", "5 texts"),
    ]
    assert target.imported == passages
    assert raw.texts == len(passages) and raw.seconds > 0
    assert np.concatenate(raw.vectors)[:, 0].tolist() == list(range(9))  # every passage once, in order
