"""The rate limiter's moving window (deployments.api.rate_limits.MovingWindow), on a clock the
test moves: any one second holds at most the limit, a refused charge counts nothing."""

import types

import pytest

from deployments.api import rate_limits
from deployments.api.rate_limits import WINDOW_S, MovingWindow


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1_000.0]
    monkeypatch.setattr(rate_limits, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_charges_fit_up_to_the_limit_and_no_further(clock):
    window = MovingWindow(5)
    assert [window.charge(2), window.charge(3), window.charge(1)] == [True, True, False]


def test_a_refused_charge_counts_nothing(clock):
    window = MovingWindow(5)
    assert window.charge(4)
    assert not window.charge(2)  # 6 > 5: refused whole ...
    assert window.charge(1)  # ... so the 1 that still fits is admitted


def test_a_charge_larger_than_the_limit_is_always_refused(clock):
    assert not MovingWindow(5).charge(6)


def test_the_window_moves_charge_by_charge_not_in_fixed_steps(clock):
    window = MovingWindow(4)
    assert window.charge(2)
    clock[0] += 0.6
    assert window.charge(2)
    clock[0] += 0.3  # 0.9 s after the first: both still in the window
    assert not window.charge(1)
    clock[0] += 0.1  # the first is WINDOW_S old: out of the window, the second is not
    assert window.charge(2)
    assert not window.charge(1)
    clock[0] += WINDOW_S
    assert window.charge(4)
