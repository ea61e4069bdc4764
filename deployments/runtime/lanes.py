"""Continuous batching for a stage that costs less per item in bigger runs (the model, a Serve call
to the store, the store's writes): concurrent calls wait while every slot is busy, and the next
slot to come free runs all of them at once.

Serve's `@serve.batch` forms a batch from what has arrived when its loop comes round, not when a
slot frees: with `max_concurrent_batches` it queues the batches it formed, each as small as the
arrivals between two turns of the loop. At 16 clients on 2 cores its search batches averaged 2.7
queries (a third of them alone), while a query costs the model about 1.4x more alone than in a run
of a dozen, and every batch pays a Serve call (README: Performance). A lone call still runs at once.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Lane(Generic[Item, Result]):
    """`run` takes the items of every call in a run, in order, and returns one result per item;
    at most `slots` runs are in flight, each of at most `most` items (a call of more runs alone)."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], slots: int, most: int) -> None:
        self._run_items = run
        self._idle = slots  # read and changed on the event loop only
        self._most = most
        self._waiting: deque[tuple[list[Item], asyncio.Future[list[Result]]]] = deque()
        self._runs: set[asyncio.Task[None]] = set()  # held: the event loop keeps only weak references
        self._start_due = False

    async def __call__(self, items: list[Item]) -> list[Result]:
        answer: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, answer))
        if not self._start_due:
            # On the event loop's next turn, not now: calls made on this turn (the searches that one
            # model run answered, all resumed together) go into one run, not a first alone.
            self._start_due = True
            asyncio.get_running_loop().call_soon(self._start_runs)
        return await answer

    def _start_runs(self) -> None:
        self._start_due = False
        while self._idle and self._waiting:
            calls = self._take()
            if calls:
                self._idle -= 1
                run = asyncio.create_task(self._run(calls))
                self._runs.add(run)
                run.add_done_callback(self._runs.discard)

    def _take(self) -> list[tuple[list[Item], asyncio.Future[list[Result]]]]:
        """The calls waiting, oldest first, up to `most` items; a call whose caller went away (a
        cancelled request) is dropped."""
        calls: list[tuple[list[Item], asyncio.Future[list[Result]]]] = []
        count = 0
        while self._waiting and (not calls or count + len(self._waiting[0][0]) <= self._most):
            call = self._waiting.popleft()
            if not call[1].done():
                calls.append(call)
                count += len(call[0])
        return calls

    async def _run(self, calls: list[tuple[list[Item], asyncio.Future[list[Result]]]]) -> None:
        try:
            results = await self._run_items([item for items, _ in calls for item in items])
        except Exception as exc:  # the run's failure is every one of its calls'
            for _, answer in calls:
                if not answer.done():
                    answer.set_exception(exc)
        else:
            start = 0
            for items, answer in calls:
                if not answer.done():
                    answer.set_result(list(results[start : start + len(items)]))
                start += len(items)
        finally:
            self._idle += 1
            self._start_runs()
