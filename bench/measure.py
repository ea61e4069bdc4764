"""How the benchmark measures: latency percentiles, concurrent throughput, memory, recall."""

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import psutil

from deployments.core.types import Vectors
from deployments.runtime.heap import CHECK_EVERY_S

SearchFn = Callable[[str], list[str]]  # query -> ids, best first


def latencies_ms(search: SearchFn, queries: list[str]) -> tuple[list[float], list[list[str]]]:
    """Each query alone, one after another: per-query milliseconds and the ids each returned."""
    times, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(search(query))
        times.append((time.perf_counter() - start) * 1000)
    return times, results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def throughput(make_search: Callable[[], SearchFn], queries: list[str], clients: int, per_client: int) -> float:
    """Searches/s with `clients` threads, each with its own connection, each sending `per_client`."""
    searches = [make_search() for _ in range(clients)]

    def run(client: int) -> None:
        for n in range(per_client):
            searches[client](queries[(client * per_client + n) % len(queries)])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    return clients * per_client / (time.perf_counter() - start)


def mean_rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def _process_tree(root: int) -> list[psutil.Process]:
    """`root`, its session and all their descendants (Ray's workers are the raylet's children)."""
    try:
        session = os.getsid(root)
    except OSError:
        return []
    members = {root}
    for found in psutil.process_iter():
        with contextlib.suppress(OSError):  # exited meanwhile
            if os.getsid(found.pid) == session:
                members.add(found.pid)
    tree: dict[int, psutil.Process] = {}
    for pid in members:
        with contextlib.suppress(psutil.Error):
            found = psutil.Process(pid)
            tree[pid] = found
            tree.update((child.pid, child) for child in found.children(recursive=True))
    return list(tree.values())


# Memory read as idle after work waits this long, so that every replica's heap watcher has had a quiet
# look and trimmed what the work left (deployments.runtime.heap): else the reading depends on when
# it fell between two looks.
IDLE_SETTLE_S = 2 * CHECK_EVERY_S + 2


def pss_mb(root: int) -> float:
    """Proportional set size of a process and everything it started, in MB: shared pages (the
    model, libraries) count once across processes, not once per process."""
    total = 0
    for found in _process_tree(root):
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            total += found.memory_full_info().pss
    return total / 2**20


@contextmanager
def peak_pss(root: int | None, interval_s: float = 0.5) -> Iterator[list[float]]:
    """Samples PSS in the background while the block runs; yields a list holding the peak."""
    peak = [0.0]
    if root is None or not psutil.pid_exists(root):
        peak[0] = float("nan")
        yield peak
        return

    def sample(stop: threading.Event) -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], pss_mb(root))
            stop.wait(interval_s)

    try:
        with in_background(sample):
            yield peak
    finally:
        peak[0] = max(peak[0], pss_mb(root))


@contextmanager
def in_background(work: Callable[[threading.Event], None]) -> Iterator[None]:
    """Runs `work(stop)` on a thread of its own while the block runs; then sets `stop` and waits for it."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def exact_top_ids(corpus: Vectors, ids: list[str], queries: Vectors, k: int) -> list[list[str]]:
    """Brute-force cosine search (vectors are unit length): the ground truth for recall."""
    scores = queries @ corpus.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    ordered = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
    return [[ids[i] for i in row] for row in ordered]


def recall_at(found: list[list[str]], exact: list[list[str]], k: int) -> float:
    return statistics.fmean(len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found, exact, strict=True))
