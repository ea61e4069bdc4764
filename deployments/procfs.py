"""The processes of this machine as Linux's /proc shows them: what the launcher needs to find the
HAProxy it must drain, and what the tests need to find, count and kill the service's processes."""

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # the kernel's short name (15 characters at most)
    state: str  # "Z" for a zombie: exited, not yet reaped by its parent
    parent: int
    session: int

    @property
    def running(self) -> bool:
        return self.state != "Z"


def process(pid: int) -> Process | None:
    """The process, or None once it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (name) state ppid pgrp session ...": the name may hold spaces and parentheses.
    state, parent, _group, session = stat[stat.rindex(")") + 2 :].split()[:4]
    return Process(pid, stat[stat.index("(") + 1 : stat.rindex(")")], state, int(parent), int(session))


def processes() -> list[Process]:
    found = (process(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [found_process for found_process in found if found_process is not None]


def command_line(pid: int) -> str | None:
    """The process's arguments joined by spaces (Ray puts a replica's name there), or None once it is gone."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def descendants(root: int) -> list[Process]:
    """Every process below `root`, children first."""
    children: dict[int, list[Process]] = {}
    for child in processes():
        children.setdefault(child.parent, []).append(child)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found
