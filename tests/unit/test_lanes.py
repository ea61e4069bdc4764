"""Continuous batching (deployments.runtime.lanes.Lane): calls made while every slot is busy share
the next run, each gets its own results, and a failure or a cancelled caller stays contained.
Runs are held open by the test (no timing), so what shares a run is decided by the order of events."""

import asyncio

import pytest

from deployments.runtime.lanes import Lane

pytestmark = pytest.mark.anyio


class HeldRuns:
    """A stage whose runs finish when the test says: it records each run's items and answers
    every item with its own double."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.runs: list[list[int | str]] = []
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_on = fail_on

    async def __call__(self, items: list[int | str]) -> list[int | str]:
        self.runs.append(items)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"run with {self.fail_on} failed")
        return [item * 2 for item in items]


async def settle() -> None:
    for _ in range(5):  # a few turns of the loop: calls reach the lane, runs start
        await asyncio.sleep(0)


async def test_a_lone_call_runs_at_once_and_gets_its_results():
    stage = HeldRuns()
    stage.release.set()
    lane = Lane(stage, slots=2, most=32)
    assert await lane([1, 2, 3]) == [2, 4, 6]
    assert stage.runs == [[1, 2, 3]]


async def test_calls_made_while_every_slot_is_busy_share_the_next_run():
    stage = HeldRuns()
    lane = Lane(stage, slots=1, most=32)
    first = asyncio.create_task(lane([1]))
    await settle()
    waiting = [asyncio.create_task(lane([n, n + 100])) for n in (2, 3, 4)]
    await settle()
    assert stage.runs == [[1]]  # the others wait for the slot
    stage.release.set()
    assert await first == [2]
    assert [await call for call in waiting] == [[4, 204], [6, 206], [8, 208]]
    assert stage.runs == [[1], [2, 102, 3, 103, 4, 104]]


async def test_calls_made_on_one_turn_of_the_loop_go_into_one_run():
    """As the searches that one model run answered, all resumed together, reach the store."""
    stage = HeldRuns()
    stage.release.set()
    lane = Lane(stage, slots=2, most=32)
    assert list(await asyncio.gather(lane([1]), lane([2]), lane([3]))) == [[2], [4], [6]]
    assert stage.runs == [[1, 2, 3]]


async def test_no_more_than_slots_runs_at_once_and_a_run_holds_at_most_most_items():
    stage = HeldRuns()
    lane = Lane(stage, slots=2, most=3)
    calls = []
    for n in range(6):  # one per turn: each would start a run of its own if a slot were free
        calls.append(asyncio.create_task(lane([n, n])))
        await settle()
    assert stage.in_flight == 2
    stage.release.set()
    assert [await call for call in calls] == [[2 * n, 2 * n] for n in range(6)]
    assert stage.most_in_flight == 2
    assert all(len(run) <= 3 for run in stage.runs[2:])  # waiting calls: 2 items each, at most 3 a run
    assert sorted(item for run in stage.runs for item in run) == sorted([n for n in range(6)] * 2)


async def test_a_call_of_more_than_most_items_runs_alone():
    stage = HeldRuns()
    stage.release.set()
    lane = Lane(stage, slots=1, most=2)
    assert await lane([1, 2, 3, 4]) == [2, 4, 6, 8]
    assert stage.runs == [[1, 2, 3, 4]]


async def test_a_failed_run_fails_its_calls_only_and_frees_its_slot():
    stage = HeldRuns(fail_on="bad")
    lane = Lane(stage, slots=1, most=32)
    doomed = [asyncio.create_task(lane(["bad"])), asyncio.create_task(lane(["ok"]))]
    await settle()
    stage.release.set()
    for call in doomed:
        with pytest.raises(RuntimeError, match="run with bad failed"):
            await call
    assert await lane(["fine"]) == ["finefine"]  # the slot came back


async def test_a_caller_that_went_away_is_left_out_and_the_others_are_answered():
    stage = HeldRuns()
    lane = Lane(stage, slots=1, most=32)
    first = asyncio.create_task(lane([1]))
    await settle()
    gone, kept = asyncio.create_task(lane([2])), asyncio.create_task(lane([3]))
    await settle()
    gone.cancel()  # a client disconnected while its search waited
    await settle()
    stage.release.set()
    assert await first == [2]
    assert await kept == [6]
    assert gone.cancelled()
    assert stage.runs == [[1], [3]]
