"""A throwaway ClickHouse server on a loopback port, for tests and benchmarks.

It runs Debian's ``clickhouse-server`` package (18.16 here) with its stock config and every
path and port overridden on the command line; it starts in about a second, and dies with the
process that started it (``driftline.processes``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from driftline.broker import free_port, wait_for_port
from driftline.processes import ManagedProcess

DEFAULT_CONFIG = Path("/etc/clickhouse-server/config.xml")


class LocalClickHouseServer(ManagedProcess):
    def __init__(self, root: Path, config: Path = DEFAULT_CONFIG) -> None:
        self.root = root
        self.config = config
        self.port = free_port()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = "default") -> str:
        return f"clickhouse://default:@{self.address}/{database}"

    def start(self, timeout_s: float = 30.0) -> LocalClickHouseServer:
        binary = shutil.which("clickhouse-server")
        if binary is None or not self.config.exists():
            raise FileNotFoundError(
                "clickhouse-server is not installed (Debian: apt-get install clickhouse-server; "
                "`make test` does this)"
            )
        root = self.root
        overrides = {
            "path": f"{root}/data/",
            "tmp_path": f"{root}/tmp/",
            "user_files_path": f"{root}/user_files/",
            "format_schema_path": f"{root}/format_schemas/",
            "tcp_port": str(self.port),
            "http_port": str(free_port()),
            "interserver_http_port": str(free_port()),
            "listen_host": "127.0.0.1",
            "logger.log": f"{root}/server.log",
            "logger.errorlog": f"{root}/server.err.log",
            "logger.level": "warning",
        }
        args = [binary, f"--config-file={self.config}", "--"]
        args += [f"--{key}={value}" for key, value in overrides.items()]
        root.mkdir(parents=True, exist_ok=True)
        self._spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
        wait_for_port("127.0.0.1", self.port, timeout=timeout_s)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        from clickhouse_driver import Client

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                Client("127.0.0.1", port=self.port).execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
