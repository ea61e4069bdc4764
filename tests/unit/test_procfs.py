"""deployments.procfs against this machine's real /proc."""

import os
import subprocess
import sys
import time

from deployments import procfs


def test_a_child_is_found_below_us_with_its_name_command_line_and_session():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10  # until the fork has become the new program
        while "time.sleep(30)" not in (procfs.command_line(child.pid) or "") and time.monotonic() < deadline:
            time.sleep(0.01)
        found = {member.pid: member for member in procfs.descendants(os.getpid())}
        assert child.pid in found
        member = found[child.pid]
        assert member.parent == os.getpid() and member.session == os.getsid(0) and member.running
        assert member.name.startswith("python")
        assert "time.sleep(30)" in (procfs.command_line(child.pid) or "")
    finally:
        child.kill()
    child.wait()
    assert procfs.process(child.pid) is None and procfs.command_line(child.pid) is None
