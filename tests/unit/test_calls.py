"""Calls between deployments: a long call that no replica takes is refused without being sent."""

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest
from ray.exceptions import RayActorError

from deployments.core.errors import ServiceUnavailable
from deployments.runtime import calls


class NoReplica:
    """A handle method whose deployment has no replica: choosing one never ends."""

    def __init__(self) -> None:
        self.dispatched: list[Any] = []

    @asynccontextmanager
    async def choose_replica(self, *args: Any):
        await asyncio.sleep(3600)
        yield "never"

    def dispatch(self, selection: Any, *args: Any) -> Any:
        self.dispatched.append(args)
        raise AssertionError("dispatched without a replica")


class OneReplica(NoReplica):
    @asynccontextmanager
    async def choose_replica(self, *args: Any):
        yield "replica-1"

    def dispatch(self, selection: Any, *args: Any) -> Any:
        self.dispatched.append((selection, args))

        async def answer() -> str:
            await asyncio.sleep(0.2)  # longer than the handover timeout: once handed over, it is awaited
            return "stored"

        return answer()


def test_a_write_no_replica_takes_is_a_503_and_never_sent(monkeypatch):
    monkeypatch.setattr(calls, "HANDOVER_TIMEOUT_S", 0.05)
    method = NoReplica()
    with pytest.raises(ServiceUnavailable, match=r"did not take the write within 0\.05 s"):
        asyncio.run(calls.send("ChromaStore", method, ["doc-1"]))
    assert method.dispatched == []


def test_a_write_handed_over_is_awaited_to_its_end(monkeypatch):
    monkeypatch.setattr(calls, "HANDOVER_TIMEOUT_S", 0.05)
    method = OneReplica()
    assert asyncio.run(calls.send("ChromaStore", method, ["doc-1"])) == "stored"
    assert method.dispatched == [("replica-1", (["doc-1"],))]


def test_a_read_past_its_timeout_is_a_503():
    async def slow() -> None:
        await asyncio.sleep(3600)

    with pytest.raises(ServiceUnavailable, match=r"did not answer within 0\.05 s"):
        asyncio.run(calls.read("ChromaStore", slow(), timeout_s=0.05))


class DiesWithTheCall(OneReplica):
    """The replica took the call, then died (kill -9, out of memory) before answering."""

    def dispatch(self, selection: Any, *args: Any) -> Any:
        self.dispatched.append((selection, args))

        async def answer() -> str:
            raise RayActorError()

        return answer()


def test_a_write_whose_replica_dies_with_it_is_a_503_that_says_the_outcome_is_unknown():
    # The store may have committed it before it died: "nothing was stored" would be a guess.
    with pytest.raises(ServiceUnavailable, match="may or may not have been stored") as lost:
        asyncio.run(calls.send("ChromaStore", DiesWithTheCall(), ["doc-1"]))
    assert "Read the ids back" in lost.value.message


def test_an_embedding_whose_replica_dies_with_it_is_a_plain_503():
    with pytest.raises(ServiceUnavailable, match=r"unavailable \(RayActorError\); retry shortly$"):
        asyncio.run(calls.send("Embedder", DiesWithTheCall(), ["text"], writes=False))
