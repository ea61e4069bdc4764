"""The heap watcher every replica runs (deployments.runtime.heap): a quiet process's free heap goes
back to the OS; a busy one's stays (its next calls reuse it). Each case in a child process, whose
heap is its own: the watcher is started once per process and runs for its life."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deployments.runtime import heap

REPO = Path(__file__).resolve().parents[2]

# About 100 MB freed inside malloc's heap: blocks above pymalloc's 512 bytes come from malloc, and
# the block allocated after them keeps them below the heap's top, which free() would give back.
CHILD = textwrap.dedent(
    """
    import sys, time
    import psutil
    from deployments.runtime import heap

    def rss_mb():
        return psutil.Process().memory_info().rss / 2**20

    blocks = [bytes(2000) for _ in range(50_000)]
    pin = bytes(2000)
    del blocks
    assert heap.free_heap_bytes() >= 90 * 2**20, heap.free_heap_bytes()
    before = rss_mb()
    heap.trim_heap_when_quiet(period_s=0.2)
    if sys.argv[1] == "busy":
        end = time.process_time() + 1.5  # CPU seconds: as long on a loaded machine
        while time.process_time() < end:
            pass
    else:
        deadline = time.monotonic() + 10
        while rss_mb() > before - 50 and time.monotonic() < deadline:
            time.sleep(0.1)
    print(before, rss_mb())
    """
)

pytestmark = pytest.mark.skipif(heap.free_heap_bytes() == 0, reason="the C library is not glibc 2.33+")


def rss_before_and_after(mode: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    before, after = (float(number) for number in done.stdout.split())
    return before, after


def test_a_quiet_process_gives_its_free_heap_back() -> None:
    before, after = rss_before_and_after("quiet")
    assert after < before - 50


def test_a_busy_process_keeps_its_free_heap() -> None:
    before, after = rss_before_and_after("busy")
    assert after > before - 20


def test_quiet_is_less_than_a_twentieth_of_a_core() -> None:
    assert heap.quiet(cpu_seconds=0.1, period_s=5.0)
    assert not heap.quiet(cpu_seconds=0.5, period_s=5.0)
