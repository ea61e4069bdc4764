"""Hands the C heap's free memory back to the OS once a replica has gone quiet.

glibc's malloc keeps what a process frees for its next allocations, and returns it to the OS only
from the top of its heaps or when told to (`malloc_trim`). ONNX Runtime gives its arena's chunks
back after each model run (`memory.enable_memory_arena_shrinkage`, embedding.backends), but to
glibc, not to the OS; and glibc raises its mmap threshold as big blocks are freed, so the next big
blocks come from the heap too. Measured (2026-12-07, AMD EPYC, README: Performance): after an
import the Embedder held about 320 MB more than at start, the store about 100 MB more after its
writes, the Ingress about 100 MB more after 16 clients' searches, all of it free and kept. A
trim after every run would cost the next run its page faults again; one trim once the process
has had a quiet spell costs a busy replica nothing, and a quiet one a few milliseconds.
"""

import ctypes
import threading
import time

# How often the watcher looks, and what counts as quiet: less CPU than this share of one core over
# the last look. A replica's own idle work (Ray's worker loop) is about 0.01-0.02 of a core.
CHECK_EVERY_S = 5.0
QUIET_CORES = 0.05
# Free heap worth a trim: less is the heap's ordinary slack, which the next calls reuse anyway.
WORTH_TRIMMING_BYTES = 16 * 2**20


_MALLINFO2_FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
)  # fmt: skip


class _Mallinfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33 and later): byte counts over all of malloc's arenas."""

    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc with `mallinfo2` and `malloc_trim`, else None (musl,
    macOS, an older glibc): there the watcher does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def free_heap_bytes() -> int:
    """Bytes malloc holds free in its arenas (0 where that cannot be read)."""
    return int(_LIBC.mallinfo2().fordblks) if _LIBC else 0


def trim_heap() -> None:
    """Return malloc's free pages, in every arena, to the OS (ctypes releases the GIL meanwhile)."""
    if _LIBC:
        _LIBC.malloc_trim(0)


def quiet(cpu_seconds: float, period_s: float) -> bool:
    """Whether a process that used `cpu_seconds` of CPU over the last `period_s` was quiet."""
    return cpu_seconds < QUIET_CORES * period_s


def _watch(period_s: float) -> None:
    last = time.process_time()  # every thread of this process
    while True:
        time.sleep(period_s)
        now = time.process_time()
        # The heap is read only when the process was quiet: reading it locks each arena in turn.
        if quiet(now - last, period_s) and free_heap_bytes() >= WORTH_TRIMMING_BYTES:
            trim_heap()
        last = time.process_time()  # the trim's own CPU is not the next period's work


_started = threading.Lock()
_watching = False


def trim_heap_when_quiet(period_s: float = CHECK_EVERY_S) -> None:
    """Start this process's watcher (once; later calls do nothing): a daemon thread that looks every
    `period_s` and trims the heap after a quiet spell when enough of it is free."""
    global _watching
    with _started:
        if _watching or _LIBC is None:
            return
        _watching = True
    threading.Thread(target=_watch, args=(period_s,), name="heap-trim", daemon=True).start()
