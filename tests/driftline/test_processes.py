"""Children the project starts die with their parent, even one killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import wait_until

from driftline.processes import is_running, port_free

STARTS_A_SERVER_AND_WAITS = """
import sys, time
from pathlib import Path
from driftline.store.local_server import LocalClickHouseServer
server = LocalClickHouseServer(Path(sys.argv[1])).start()
print(server.pid, server.port, flush=True)
time.sleep(600)
"""


def test_local_clickhouse_server_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", STARTS_A_SERVER_AND_WAITS, str(tmp_path / "clickhouse")],
        stdout=subprocess.PIPE,
        text=True,
    )
    server_pid = 0
    try:
        assert parent.stdout is not None
        pid, port = (int(field) for field in parent.stdout.readline().split())
        server_pid = pid
        assert is_running(server_pid) and not port_free(port)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_until(lambda: not is_running(server_pid), timeout=5, what="the server to die")
        wait_until(lambda: port_free(port), timeout=5, what="its port to be free")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if server_pid and is_running(server_pid):  # the bug: a server that outlived its owner
            os.kill(server_pid, signal.SIGKILL)
