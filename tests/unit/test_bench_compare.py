"""bench.compare's pieces that need no running service: the worktrees, the medians, the steal share
(the runs themselves are `make bench-compare`'s, never a test: they measure the machine)."""

from collections import namedtuple
from pathlib import Path

from bench.compare import CURRENT, Run, checkouts, git, render, settings_of
from bench.cpu import ROLES, steal_share
from bench.instance import REPO

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_steal_share_is_stolen_time_over_all_time_with_guest_time_counted_once() -> None:
    before = Times(100, 0, 50, 800, 0, 0, 0, 50, 0, 0)
    # 200 s passed: 20 stolen; 40 of user's 100 were a guest's own (already inside user).
    after = Times(200, 0, 70, 860, 0, 0, 0, 70, 40, 0)
    assert steal_share(before, after) == 20 / 200


def test_the_table_shows_medians_and_each_revisions_cpu_against_the_first() -> None:
    def run(p50: float, cpu: float) -> Run:
        return Run(p50, 50.0, {role: cpu / len(ROLES) for role in ROLES}, 0.01)

    table = render(["old", "new"], {"old": [run(10, 20), run(30, 40), run(20, 30)], "new": [run(20, 33), run(20, 33)]})
    old, new = table.splitlines()[2:]
    assert old.startswith("| old | 20.0 | 50.0 | 30.0 |") and old.endswith("| 1.0 | 1.00x |")
    assert new.startswith("| new | 20.0 | 50.0 | 33.0 |") and new.endswith("| 1.10x |")


def test_each_revision_gets_a_worktree_of_its_own_and_it_is_removed_after(tmp_path: Path) -> None:
    head = git("rev-parse", "HEAD")
    with checkouts(["HEAD", CURRENT], tmp_path) as trees:
        assert trees[CURRENT] == REPO
        assert (trees["HEAD"] / "deployments" / "launch.py").is_file()
        assert git("-C", str(trees["HEAD"]), "rev-parse", "HEAD") == head
    assert not trees["HEAD"].exists()
    assert str(trees["HEAD"]) not in git("worktree", "list")


def test_a_revision_may_carry_settings_for_its_service() -> None:
    assert settings_of(".") == (".", {})
    assert settings_of(".:QUERY_BACKEND=onnx-int8") == (".", {"QUERY_BACKEND": "onnx-int8"})
    assert settings_of("main:PLAN=pro,EXTRA=a=b") == ("main", {"PLAN": "pro", "EXTRA": "a=b"})
