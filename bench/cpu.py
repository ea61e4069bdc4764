"""Where the CPU goes: seconds of CPU (user + system) of every process of a running service, by role."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.instance import session_processes

# A replica's process title is "ray::ServeReplica:<app>:<deployment>".
DEPLOYMENTS = ("Ingress", "Embedder", "ChromaStore")
RAY = "Ray's own processes"
HAPROXY = "HAProxy"
ROLES = (*DEPLOYMENTS, HAPROXY, RAY)


def role(command: str) -> str:
    for deployment in DEPLOYMENTS:
        if f"ServeReplica:chromedb:{deployment}" in command:
            return deployment
    return HAPROXY if command.split(" ", 1)[0].endswith("/haproxy") else RAY


def cpu_by_role(session: int) -> dict[str, float]:
    """CPU seconds each role's processes in the launcher's session have used since they started
    (Ray's workers and HAProxy have process groups of their own but stay in that session)."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, command in session_processes(session):
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue  # exited meanwhile
        used[role(command)] += times.user + times.system
    return used


@dataclass
class CpuUse:
    """CPU used by role over a stretch of wall time."""

    seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float = float("nan")
    # The share of the machine's CPU time its hypervisor gave to other guests meanwhile: on a
    # shared host the same work costs more CPU seconds when it is high, so figures of two runs
    # compare only at a like steal (the same run's baselines do not have this problem).
    steal: float = float("nan")

    @property
    def cores(self) -> float:
        return sum(self.seconds.values()) / self.wall_s

    def __add__(self, other: "CpuUse") -> "CpuUse":
        """Two stretches as one (a phase measured in turns with another target's); a CpuUse that
        measured nothing (a figure's default) adds nothing."""
        if not self.seconds or not other.seconds:
            return self if self.seconds else other
        wall_s = self.wall_s + other.wall_s
        return CpuUse(
            seconds={name: self.seconds.get(name, 0.0) + other.seconds.get(name, 0.0) for name in ROLES},
            wall_s=wall_s,
            steal=(self.steal * self.wall_s + other.steal * other.wall_s) / wall_s,
        )

    def ms_per(self, count: int) -> dict[str, float]:
        return {name: 1000 * seconds / count for name, seconds in self.seconds.items()}


@contextmanager
def cpu_use(session: int | None) -> Iterator[CpuUse]:
    """The CPU the service whose launcher is `session` uses while the block runs (none when None)."""
    use = CpuUse()
    if session is None:
        yield use
        return
    before, started, machine_before = cpu_by_role(session), time.perf_counter(), psutil.cpu_times()
    yield use
    after, machine_after = cpu_by_role(session), psutil.cpu_times()
    use.wall_s = time.perf_counter() - started
    use.seconds = {name: after[name] - before[name] for name in ROLES}
    use.steal = steal_share(machine_before, machine_after)


def steal_share(before: Any, after: Any) -> float:
    """The share of all CPU time between two psutil.cpu_times() that went to other guests."""
    total = _all_time(after) - _all_time(before)
    return (after.steal - before.steal) / total if total > 0 else float("nan")


def _all_time(times: Any) -> float:
    # Linux counts a guest's own guest time inside user (and guest_nice inside nice): not twice.
    return float(sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0))
