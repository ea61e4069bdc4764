"""The store's same-host read channel (deployments.runtime.read_channel) over a real Unix socket, and
the Ingress's use of it (deployments.api.handles.StoreCalls): answers come back to their own call
in any order, our errors arrive as themselves, and when the channel goes away every read is sent
over Serve instead, none lost. Slow calls are held by the test (no timing)."""

import asyncio
import inspect
import os
from pathlib import Path
from typing import Any

import pytest

from deployments.api.handles import CHANNEL_READS, StoreCalls
from deployments.core.errors import InternalFailure, NotFound
from deployments.runtime.read_channel import Channel, ChannelBroken, ChannelServer
from tests.fakes import LocalHandle

pytestmark = pytest.mark.anyio


class Replica:
    """A store replica's side: reads that answer at once, one held until released, and faults."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: list[str] = []
        self.server = ChannelServer(self, {"echo", "held", "refuse", "crash"} | CHANNEL_READS)

    async def echo(self, value: Any) -> Any:
        self.calls.append("echo")
        return value

    async def held(self, value: Any) -> Any:
        self.calls.append("held")
        await self.release.wait()
        return value

    async def refuse(self) -> None:
        raise NotFound("no such document", field="ids.0")

    async def crash(self) -> None:
        raise KeyError("a bug")

    async def not_served(self) -> None:
        self.calls.append("not_served")

    async def read_channel(self) -> str:
        return await self.server.open()

    async def count(self) -> int:
        self.calls.append("count")
        return 7


@pytest.fixture
async def replica() -> Any:
    replica = Replica()
    await replica.server.open()
    yield replica
    replica.server.close()
    await settle()  # the connections see their end before the test's event loop closes


async def settle() -> None:
    for _ in range(20):  # turns of the loop: frames cross the socket, handlers run
        await asyncio.sleep(0)


async def test_answers_reach_their_own_call_in_any_order(replica: Replica) -> None:
    channel = await Channel.connect(replica.server.path)
    slow = asyncio.create_task(channel.call("held", "first sent"))
    await settle()
    assert await channel.call("echo", {"vector": [0.5] * 3}) == {"vector": [0.5] * 3}  # while the first is held
    assert not slow.done()
    replica.release.set()
    assert await slow == "first sent"
    channel.close()


async def test_our_errors_arrive_as_themselves_and_faults_as_internal_failures(replica: Replica) -> None:
    channel = await Channel.connect(replica.server.path)
    with pytest.raises(NotFound) as refused:
        await channel.call("refuse")
    assert (refused.value.message, refused.value.field) == ("no such document", "ids.0")
    with pytest.raises(InternalFailure, match="KeyError"):
        await channel.call("crash")
    with pytest.raises(InternalFailure, match="not served"):
        await channel.call("not_served")  # only the methods named are served: the replica's writes stay on Serve
    assert "not_served" not in replica.calls
    assert await channel.call("echo", 1) == 1  # the channel outlives a failed call
    channel.close()


async def test_a_closed_server_breaks_calls_in_flight_and_later_ones(replica: Replica) -> None:
    channel = await Channel.connect(replica.server.path)
    held = asyncio.create_task(channel.call("held", 1))
    await settle()
    folder = Path(replica.server.path).parent
    replica.server.close()
    with pytest.raises(ChannelBroken):
        await held
    assert channel.broken
    with pytest.raises(ChannelBroken):
        await channel.call("echo", 1)
    assert not folder.exists()
    with pytest.raises(OSError):
        await Channel.connect(replica.server.path)


async def test_the_socket_is_private_to_its_user(replica: Replica) -> None:
    assert os.stat(Path(replica.server.path).parent).st_mode & 0o077 == 0


async def test_store_calls_read_over_serve_until_the_channel_opens_and_again_once_it_breaks(replica: Replica) -> None:
    serve = LocalHandle(replica)
    store = StoreCalls(serve, channel=True)
    assert await store.count() == 7  # the channel is not open yet: over Serve, which starts opening it
    await settle()
    assert serve.called == ["count", "read_channel"]
    assert await store.count() == 7
    assert serve.called == ["count", "read_channel"]  # over the channel: Serve saw nothing more
    assert replica.calls == ["count", "count"]

    replica.server.close()  # the replica stops (Serve is replacing it)
    assert await store.count() == 7  # not lost: sent over Serve
    assert serve.called[-1] == "count"
    await settle()
    assert serve.called[-1] == "read_channel"  # the next replica is asked for its channel at once


async def test_store_calls_without_a_channel_read_over_serve_only(replica: Replica) -> None:
    serve = LocalHandle(replica)
    store = StoreCalls(serve)
    for _ in range(2):
        assert await store.count() == 7
        await settle()
    assert serve.called == ["count", "count"]


async def test_a_store_without_a_reachable_channel_is_asked_again_only_after_a_while(replica: Replica) -> None:
    """The store on another host: its socket is not here. Reads go over Serve, and the channel is
    not asked for on every read."""

    class Elsewhere(Replica):
        async def read_channel(self) -> str:
            return "/nonexistent/reads.sock"

    elsewhere = Elsewhere()
    serve = LocalHandle(elsewhere)
    store = StoreCalls(serve, channel=True)
    for _ in range(3):
        assert await store.count() == 7
        await settle()
    assert serve.called == ["count", "read_channel", "count", "count"]


class AnyStore:
    """Answers every method with None, on the channel and over Serve alike."""

    def __init__(self) -> None:
        self.server = ChannelServer(self, CHANNEL_READS)

    async def read_channel(self) -> str:
        return await self.server.open()

    def __getattr__(self, name: str) -> Any:
        async def answer(*args: Any) -> None:
            return None

        return answer


async def test_every_read_goes_over_the_channel_and_every_write_and_probe_over_serve() -> None:
    """Writes stay on Serve's calls (their handover rules: deployments.runtime.calls); so does the
    health probe (`info`), which must see what Serve sees."""
    target = AnyStore()
    serve = LocalHandle(target)
    store = StoreCalls(serve, channel=True)
    await store.count()
    await settle()  # the channel is open
    calls = {name for name in dir(StoreCalls) if not name.startswith("_")}
    for name in sorted(calls):
        arity = len(inspect.signature(getattr(StoreCalls, name)).parameters) - 1
        serve.called.clear()
        await getattr(store, name)(*[None] * arity)
        assert serve.called == ([] if name in CHANNEL_READS else [name]), name
    assert calls > CHANNEL_READS  # every channel read is a call of StoreCalls
    assert {"upsert", "delete", "delete_where", "update_metadata", "snapshot", "info"}.isdisjoint(CHANNEL_READS)
    target.server.close()
