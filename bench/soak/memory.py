"""The service's memory over the soak: PSS of its whole process tree, sampled in the background."""

import contextlib
import threading
import time

from bench import measure


class MemorySampler:
    """PSS of the service's process tree every few seconds, in a background thread; the first
    sample is taken at start() and the last at stop(). Without a pid it measures nothing (a --url
    instance without --pid)."""

    def __init__(self, pid: int | None, every_s: float) -> None:
        self.pid = pid
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._started = 0.0
        # start() and stop() are separate calls (start comes after the warm-up, inside the load), so
        # the sampling thread of measure.in_background is held open here between the two.
        self._sampling = contextlib.ExitStack()
        self._running = False

    def start(self) -> None:
        if self.pid is None:
            return
        self._started = time.monotonic()
        self._sampling.enter_context(measure.in_background(self._loop))
        self._running = True

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._sampling.close()
        self._sample()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._sample()
            stop.wait(self.every_s)

    def _sample(self) -> None:
        assert self.pid is not None
        self.samples.append((time.monotonic() - self._started, measure.pss_mb(self.pid)))
