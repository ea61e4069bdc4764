"""Disk full or data folder not writable: every write gets a clear 507 and stores nothing, reads
keep working, and writes work again once the fault is gone. Real chromadb, real files; the fault
is made in a child process (a file-size limit stands in for a full disk)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def child(folder: str, mode: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "tests.unit.refused_writes_child", folder, mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return outcome


@pytest.mark.parametrize("fault", ["full", "readonly"])
def test_a_refused_write_is_a_clear_507_and_reads_go_on(tmp_path, fault):
    outcome = child(str(tmp_path / "data"), fault)
    for action, refused in outcome["refused"].items():
        assert refused["status"] == 507, (action, refused)
        assert refused["error"] == "insufficient_storage" and "nothing was stored" in refused["message"]
    # Nothing of the refused writes landed, and the store still answers reads.
    assert outcome["reads"] == {"count": 40, "hits": 5}
    try:
        # With the fault gone, a freshly opened store (a restarted replica) writes again.
        assert child(outcome["folder"], "recover") == {"recovered": {"status": 200}, "count": 41}
    finally:
        shutil.rmtree(outcome["folder"], ignore_errors=True)
