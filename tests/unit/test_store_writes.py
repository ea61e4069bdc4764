"""bench.store_writes, the figure behind the README's store write rate, runs and reports both halves."""

import re
import sys

import pytest

from bench import store_writes


def test_reports_a_rate_for_each_half(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["store_writes", "--docs", "256", "--batch", "32", "--words", "20"])
    store_writes.main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["first half", "second half"]
    for line in lines:
        rate = re.search(r"128 documents in batches of 32: ([\d,]+)/s$", line)
        assert rate and int(rate.group(1).replace(",", "")) > 0, line
