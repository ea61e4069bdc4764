"""`make bench` reads the memory under load in a phase of its own (reading PSS is dear, so no timed
phase pays for it): its clients search for as long as its import runs, and no longer."""

import argparse
import os
import threading
import time
from typing import cast

import numpy as np

from bench.__main__ import LOAD_DOCUMENTS, memory_under_load
from bench.targets import Target
from bench.workload import Passage, Workload


class RecordingTarget:
    """A target whose import takes a while and whose searches are counted, by phase."""

    name = "recording"

    def __init__(self) -> None:
        self.pid = os.getpid()  # PSS of this process, as of the service's tree
        self.importing = threading.Event()
        self.searches_during_import = 0
        self.searches = 0
        self.imported: list[Passage] = []
        self._lock = threading.Lock()

    def make_search(self) -> object:
        def search(query: str) -> list[str]:
            with self._lock:
                self.searches += 1
                self.searches_during_import += self.importing.is_set()
            time.sleep(0.002)
            return []

        return search

    def ingest(self, passages: list[Passage], batch_size: int, clients: int) -> None:
        self.importing.set()
        time.sleep(0.3)
        self.imported = passages
        self.importing.clear()


def test_clients_search_while_the_import_runs_and_stop_when_it_ends() -> None:
    stored = [Passage(f"doc-{n}", f"text {n}") for n in range(8)]
    workload = Workload(stored, ["a query", "another"], [], [], np.empty((0, 384), dtype=np.float32))
    target = RecordingTarget()
    args = argparse.Namespace(clients=4, ingest_batch=64, ingest_clients=2)

    peak_mb = memory_under_load(cast(Target, target), workload, args)

    assert peak_mb > 0
    assert target.searches_during_import >= 4  # the clients searched during the import
    # New documents, so a service embeds them (an unchanged text would reuse its stored vector).
    assert len(target.imported) == LOAD_DOCUMENTS
    assert not {p.id for p in target.imported} & {p.id for p in stored}
    assert not {p.text for p in target.imported} & {p.text for p in stored}
    searched = target.searches
    time.sleep(0.05)
    assert target.searches == searched  # the clients stopped with the import
