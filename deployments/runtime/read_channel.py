"""A same-host channel for reads from one replica to another, beside Serve's calls.

A Serve call between two replicas costs a lone search about 3 CPU ms and 3 ms of its ~20 on two
cores (gRPC, Serve's router and its request wrappers, on both sides: README: Performance). Reads
(searches, lookups, counts) are the most frequent calls, change nothing and are safe to send again,
so the store replica also serves them on a Unix socket, which the Ingress uses when it runs on the
same host (one container per tenant: always). Writes stay on Serve's calls, whose handover rules
deployments.runtime.calls builds on; so do health probes, which must see what Serve sees.

A channel that breaks (its replica stopped, died or was replaced) fails its calls with
ChannelBroken, and the caller sends them over Serve instead (deployments.api.handles.StoreCalls).

Frames are a 4-byte length and a pickle, as Ray's own calls are pickles: only processes of the
same user reach the socket (it lies in a folder only that user may enter).
"""

import asyncio
import contextlib
import itertools
import logging
import pickle
import shutil
import struct
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from deployments.core.errors import InternalFailure, ServiceError

logger = logging.getLogger("ray.serve")

_LENGTH = struct.Struct("!I")


class ChannelBroken(ConnectionError):
    """The channel's replica went away; the call may be sent again another way (it is a read)."""


def _frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


async def _next_message(reader: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(length))


class ChannelServer:
    """Serves `target`'s async methods named in `methods` on a Unix socket, each call concurrently
    on the running event loop, as Serve would call them."""

    def __init__(self, target: Any, methods: Collection[str]) -> None:
        self._target = target
        self._methods = frozenset(methods)
        self._folder: Path | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def path(self) -> str:
        assert self._folder is not None, "the channel was never opened"
        return str(self._folder / "reads.sock")

    async def open(self) -> str:
        """The socket's path, serving from the first call on."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="chromedb-channel-"))  # mode 0700
            self._server = await asyncio.start_unix_server(self._serve, self.path)
        return self.path

    def close(self) -> None:
        """Stop serving: open connections are cut (their callers send their reads over Serve)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        calls: set[asyncio.Task[None]] = set()  # held: the event loop keeps only weak references
        try:
            while True:
                call_id, method, args = await _next_message(reader)
                call = asyncio.create_task(self._answer(writer, call_id, method, args))
                calls.add(call)
                call.add_done_callback(calls.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the caller went away
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method not in self._methods:
                raise InternalFailure(f"{method} is not served on the read channel")
            answer = (call_id, True, await getattr(self._target, method)(*args))
        except ServiceError as exc:  # ours, with its status: as a Serve call would bring it back
            answer = (call_id, False, exc)
        except Exception as exc:
            logger.exception("a read over the channel failed: %s", method)
            failure = InternalFailure(f"the read failed in the store ({type(exc).__name__}); it was logged")
            answer = (call_id, False, failure)
        if writer.is_closing():
            return
        writer.write(_frame(answer))
        with contextlib.suppress(ConnectionError):  # the caller went away
            await writer.drain()


class Channel:
    """The calling end: many calls in flight over one connection, answers matched by call id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._call_ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self.broken = False
        self._receiving = asyncio.create_task(self._receive(reader))

    @classmethod
    async def connect(cls, path: str) -> "Channel":
        """OSError where there is no such socket here (the replica runs on another host) or it is closed."""
        return cls(*await asyncio.open_unix_connection(path))

    async def call(self, method: str, *args: Any) -> Any:
        if self.broken:
            raise ChannelBroken("the read channel is closed")
        call_id = next(self._call_ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = answer
        try:
            self._writer.write(_frame((call_id, method, args)))
            return await answer
        finally:
            self._waiting.pop(call_id, None)  # also when the caller gave up (a timeout): a late answer is dropped

    def close(self) -> None:
        self._writer.close()

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call_id, ok, value = await _next_message(reader)
                answer = self._waiting.get(call_id)
                if answer is not None and not answer.done():
                    if ok:
                        answer.set_result(value)
                    else:
                        answer.set_exception(value)
        except Exception as exc:  # the end of the connection, or a frame that cannot be read
            self.broken = True
            for answer in self._waiting.values():
                if not answer.done():
                    answer.set_exception(ChannelBroken(f"the read channel broke ({type(exc).__name__})"))
            self._writer.close()
